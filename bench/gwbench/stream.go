package main

import (
	"github.com/airlockdev/airlock/bench/procstat"

	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

type streamResult struct {
	Bytes       int64   `json:"bytes"`
	Seconds     float64 `json:"seconds"`
	BytesPerSec float64 `json:"bytes_per_sec"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	CPUPerGiB   float64 `json:"cpu_seconds_per_gib"`
}

func runStream(args []string) error {
	fs := flag.NewFlagSet("stream", flag.ContinueOnError)
	addr := fs.String("addr", "", "address to connect to (proxy or source)")
	target := fs.String("connect", "", "CONNECT target host:port; empty: no CONNECT")
	n := fs.Int64("bytes", 1<<30, "bytes expected before EOF")
	pidList := fs.String("pids", "", "PIDs whose CPU time is measured")
	clk := fs.Float64("clk-tck", 100, "clock ticks per second (getconf CLK_TCK)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pids, err := procstat.ParsePIDs(*pidList)
	if err != nil {
		return err
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	cpu0, err := procstat.CPUSeconds(pids, *clk)
	if err != nil {
		return err
	}
	start := time.Now()
	c, err := dialTunnel(*addr, *target, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	// os.File.ReadFrom of a TCP connection splices through a pipe.
	got, err := io.Copy(null, c)
	el := time.Since(start).Seconds()
	if err != nil {
		return fmt.Errorf("read after %d bytes: %w", got, err)
	}
	cpu1, err := procstat.CPUSeconds(pids, *clk)
	if err != nil {
		return err
	}
	if got != *n {
		return fmt.Errorf("received %d bytes, want %d", got, *n)
	}
	r := streamResult{Bytes: got, Seconds: el, BytesPerSec: float64(got) / el, CPUSeconds: cpu1 - cpu0}
	r.CPUPerGiB = r.CPUSeconds / (float64(got) / (1 << 30))
	return json.NewEncoder(os.Stdout).Encode(r)
}
