package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// parsePIDs parses a comma-separated PID list.
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

// cpuSeconds sums utime+stime of pids (all threads) in seconds.
func cpuSeconds(pids []int, clkTck float64) (float64, error) {
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

// rssBytes sums VmRSS over pids.
func rssBytes(pids []int) (int64, error) {
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

// fdCount sums the open descriptors of pids.
func fdCount(pids []int) (int, error) {
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
