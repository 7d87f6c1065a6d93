// Package procstat reads what the bench programs measure of a server process
// from /proc: CPU seconds (utime+stime of all threads), resident memory and
// open descriptors. One copy for every bench module (cachebench, gwbench,
// loadgen), each of which requires it with a local replace.
package procstat

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ParsePIDs parses a comma-separated PID list ("" is none).
func ParsePIDs(s string) ([]int, error) {
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

// CPUSeconds sums utime+stime of pids (all their threads), in seconds;
// clkTck is the kernel's USER_HZ (getconf CLK_TCK).
func CPUSeconds(pids []int, clkTck float64) (float64, error) {
	var ticks float64
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
		if err != nil {
			return 0, fmt.Errorf("read cpu of pid %d: %w", p, err)
		}
		t, err := statTicks(string(b))
		if err != nil {
			return 0, fmt.Errorf("pid %d: %w", p, err)
		}
		ticks += t
	}
	return ticks / clkTck, nil
}

// statTicks returns utime+stime from the text of /proc/PID/stat. Fields
// are counted after the command name, which may hold spaces and ')'.
func statTicks(s string) (float64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0, fmt.Errorf("parse stat %q", s)
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parse stat: %d fields after the name", len(f))
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse stat: utime %q stime %q", f[11], f[12])
	}
	return ut + st, nil
}

// RSS sums VmRSS over pids; a process without the line is an error.
func RSS(pids []int) (int64, error) {
	var sum int64
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/status")
		if err != nil {
			return 0, fmt.Errorf("read status of pid %d: %w", p, err)
		}
		v, err := statusRSS(string(b))
		if err != nil {
			return 0, fmt.Errorf("pid %d: %w", p, err)
		}
		sum += v
	}
	return sum, nil
}

// statusRSS returns VmRSS in bytes from the text of /proc/PID/status.
func statusRSS(s string) (int64, error) {
	for line := range strings.SplitSeq(s, "\n") {
		v, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("parse VmRSS %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse VmRSS %q: %w", line, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no VmRSS line")
}

// Status reads a kB field of /proc/PID/status ("VmRSS:", "VmHWM:") in
// bytes; 0 when the process or the field is gone (sampling goes on).
func Status(pid int, field string) int64 {
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

// PeakRSS returns the highest sum of VmRSS over pids, sampled every
// interval until ctx ends.
func PeakRSS(ctx context.Context, pids []int, every time.Duration) int64 {
	var peak int64
	if len(pids) == 0 {
		<-ctx.Done()
		return 0
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		var sum int64
		for _, p := range pids {
			sum += Status(p, "VmRSS:")
		}
		peak = max(peak, sum)
		select {
		case <-ctx.Done():
			return peak
		case <-tick.C:
		}
	}
}

// FDCount sums the open descriptors of pids.
func FDCount(pids []int) (int, error) {
	n := 0
	for _, p := range pids {
		ents, err := os.ReadDir("/proc/" + strconv.Itoa(p) + "/fd")
		if err != nil {
			return 0, fmt.Errorf("count descriptors of pid %d: %w", p, err)
		}
		n += len(ents)
	}
	return n, nil
}
