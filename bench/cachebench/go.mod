module github.com/airlockdev/airlock/bench/cachebench

go 1.26.8
