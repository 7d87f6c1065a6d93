package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// cpuTimes is one CPU's line of /proc/stat: busy and total ticks.
type cpuTimes struct{ busy, total uint64 }

// readCPUTimes reads every CPU's ticks from /proc/stat (the lines cpu0,
// cpu1, …). Busy is everything but idle and iowait, so softirq work (the
// loopback's TCP processing) counts.
func readCPUTimes() ([]cpuTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil, fmt.Errorf("read cpu times: %w", err)
	}
	defer f.Close()
	var out []cpuTimes
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		t, ok, err := parseCPULine(sc.Text())
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, t)
		}
	}
	return out, sc.Err()
}

// parseCPULine parses "cpuN user nice system idle iowait irq softirq
// steal …"; ok is false for other lines (and the aggregate "cpu" line).
func parseCPULine(line string) (t cpuTimes, ok bool, err error) {
	f := strings.Fields(line)
	if len(f) < 6 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
		return t, false, nil
	}
	for i, s := range f[1:] {
		if i >= 8 { // guest times are already in user
			break
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return t, false, fmt.Errorf("/proc/stat %s: %w", f[0], err)
		}
		t.total += v
		if i != 3 && i != 4 { // idle, iowait
			t.busy += v
		}
	}
	return t, true, nil
}

// busyPercent is each CPU's busy share between two readings, in percent
// (nil when the readings do not match).
func busyPercent(a, b []cpuTimes) []float64 {
	if len(a) != len(b) {
		return nil
	}
	out := make([]float64, len(a))
	for i := range a {
		if dt := b[i].total - a[i].total; dt > 0 {
			out[i] = 100 * float64(b[i].busy-a[i].busy) / float64(dt)
		}
	}
	return out
}
