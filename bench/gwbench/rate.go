package main

import (
	"github.com/airlockdev/airlock/bench/procstat"

	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

type rateResult struct {
	Tunnels    int64   `json:"tunnels"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	PerSec     float64 `json:"per_sec"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	// CPU seconds of -pids (the proxy) and of this load tool during the run.
	ProxyCPU  float64 `json:"proxy_cpu_seconds"`
	ClientCPU float64 `json:"client_cpu_seconds"`
	// Rate is the offered load of an open-loop run (tunnels/s, 0: closed
	// loop, -c workers back to back); Skipped counts starts dropped because
	// -max-inflight tunnels were still open.
	Rate    float64 `json:"rate,omitempty"`
	Skipped int64   `json:"skipped,omitempty"`
	// CPUBusy is each CPU's busy share over the run, in percent (all
	// processes, softirq included): it shows which side was saturated.
	CPUBusy []float64 `json:"cpu_busy_pct"`
}

func runRate(args []string) error {
	fs := flag.NewFlagSet("rate", flag.ContinueOnError)
	addr := fs.String("addr", "", "address to connect to (proxy or echo server)")
	target := fs.String("connect", "", "CONNECT target host:port; empty: connect directly")
	workers := fs.Int("c", 8, "concurrent workers")
	dur := fs.Duration("d", 5*time.Second, "duration")
	size := fs.Int("payload", 16, "bytes echoed per tunnel")
	pidList := fs.String("pids", "", "PIDs whose CPU time is measured")
	clk := fs.Float64("clk-tck", 100, "clock ticks per second (getconf CLK_TCK)")
	rate := fs.Float64("rate", 0, "open loop: start this many tunnels per second, each timed from its scheduled start (0: closed loop with -c workers)")
	maxIn := fs.Int("max-inflight", 2048, "open loop: most tunnels open at once (a start beyond it is skipped)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pids, err := procstat.ParsePIDs(*pidList)
	if err != nil {
		return err
	}
	self := []int{os.Getpid()}
	p0, err := procstat.CPUSeconds(pids, *clk)
	if err != nil {
		return err
	}
	c0, err := procstat.CPUSeconds(self, *clk)
	if err != nil {
		return err
	}
	t0, err := readCPUTimes()
	if err != nil {
		return err
	}
	payload := bytes.Repeat([]byte("a"), *size)
	var (
		ok, errs atomic.Int64
		mu       sync.Mutex
		lat      []time.Duration
		firstErr string
	)
	start := time.Now()
	deadline := start.Add(*dur)
	var wg sync.WaitGroup
	var skipped atomic.Int64
	if *rate > 0 {
		// Open loop: tunnel i starts at start + i/rate whether or not
		// earlier ones finished, and its latency counts from that time, so
		// a stalled proxy shows as latency (no coordinated omission).
		interval := time.Duration(float64(time.Second) / *rate)
		sem := make(chan struct{}, *maxIn)
		for i := 0; ; i++ {
			at := start.Add(time.Duration(i) * interval)
			if !at.Before(deadline) {
				break
			}
			if d := time.Until(at); d > 0 {
				time.Sleep(d)
			}
			select {
			case sem <- struct{}{}:
			default:
				skipped.Add(1)
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				buf := make([]byte, *size)
				err := oneTunnel(*addr, *target, payload, buf)
				el := time.Since(at)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs.Add(1)
					if firstErr == "" {
						firstErr = err.Error()
					}
					return
				}
				lat = append(lat, el)
				ok.Add(1)
			})
		}
	}
	for range *workers * btoi(*rate <= 0) {
		wg.Go(func() {
			mine := make([]time.Duration, 0, 1<<16)
			buf := make([]byte, *size)
			for time.Now().Before(deadline) {
				t0 := time.Now()
				err := oneTunnel(*addr, *target, payload, buf)
				if err != nil {
					errs.Add(1)
					mu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
					time.Sleep(10 * time.Millisecond)
					continue
				}
				mine = append(mine, time.Since(t0))
				ok.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	p1, err := procstat.CPUSeconds(pids, *clk)
	if err != nil {
		return err
	}
	c1, err := procstat.CPUSeconds(self, *clk)
	if err != nil {
		return err
	}
	t1, err := readCPUTimes()
	if err != nil {
		return err
	}
	r := rateResult{CPUBusy: busyPercent(t0, t1), Tunnels: ok.Load(), Errors: errs.Load(), FirstError: firstErr, Seconds: el, ProxyCPU: p1 - p0, ClientCPU: c1 - c0}
	r.PerSec = float64(r.Tunnels) / el
	r.Rate, r.Skipped = *rate, skipped.Load()
	slices.Sort(lat)
	r.P50us = micros(percentile(lat, 0.50))
	r.P99us = micros(percentile(lat, 0.99))
	return json.NewEncoder(os.Stdout).Encode(r)
}

// oneTunnel opens a tunnel (or a direct connection), echoes payload
// through it and closes it.
func oneTunnel(addr, target string, payload, buf []byte) error {
	c, err := dialTunnel(addr, target, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	return oneTunnelOn(c, payload, buf)
}

// oneTunnelOn echoes payload through an open connection.
func oneTunnelOn(c net.Conn, payload, buf []byte) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(payload); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if !bytes.Equal(buf, payload) {
		return fmt.Errorf("echo %q, want %q", buf, payload)
	}
	return nil
}

// percentile returns the q-quantile (nearest rank) of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
