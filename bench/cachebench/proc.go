package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func parsePIDs(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil || p <= 0 {
			return nil, fmt.Errorf("bad pid %q", f)
		}
		out = append(out, p)
	}
	return out, nil
}

// cpuSeconds sums utime+stime of pids (all their threads) from /proc/PID/stat.
func cpuSeconds(pids []int, clkTck float64) (float64, error) {
	var ticks float64
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
		if err != nil {
			return 0, fmt.Errorf("read cpu of pid %d: %w", p, err)
		}
		// Fields after the command name (which may hold spaces): utime is
		// field 14, stime 15.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 13 {
			return 0, fmt.Errorf("parse /proc/%d/stat", p)
		}
		ut, err1 := strconv.ParseFloat(f[11], 64)
		st, err2 := strconv.ParseFloat(f[12], 64)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("parse /proc/%d/stat", p)
		}
		ticks += ut + st
	}
	return ticks / clkTck, nil
}

// sampleRSS returns the highest sum of VmRSS over pids, sampled every
// 20 ms until ctx ends.
func sampleRSS(ctx context.Context, pids []int) int64 {
	var peak int64
	if len(pids) == 0 {
		<-ctx.Done()
		return 0
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var sum int64
		for _, p := range pids {
			sum += procStatus(p, "VmRSS:")
		}
		peak = max(peak, sum)
		select {
		case <-ctx.Done():
			return peak
		case <-tick.C:
		}
	}
}

// procStatus reads a kB field of /proc/PID/status (VmRSS:, VmHWM:) in bytes.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			if f := strings.Fields(v); len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
