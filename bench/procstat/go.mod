module github.com/airlockdev/airlock/bench/procstat

go 1.26.8
