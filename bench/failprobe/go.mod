module github.com/airlockdev/airlock/bench/failprobe

go 1.26.8
