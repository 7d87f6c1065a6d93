module github.com/airlockdev/airlock/bench/cachebench

go 1.26.8

require github.com/airlockdev/airlock/bench/procstat v0.0.0

replace github.com/airlockdev/airlock/bench/procstat => ../procstat
