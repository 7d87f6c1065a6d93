module github.com/airlockdev/airlock/bench/loadgen

go 1.26.8
