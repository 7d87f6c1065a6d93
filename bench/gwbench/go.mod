module github.com/airlockdev/airlock/bench/gwbench

go 1.26.8
