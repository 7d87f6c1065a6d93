module github.com/airlockdev/airlock/bench/reqcount

go 1.26.8
