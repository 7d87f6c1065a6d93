package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// bucket is a token bucket of bytes, shared by every connection of one
// direction of a throttle: rate bytes per second, at most burst bytes
// banked while idle. A reservation may overdraw it; the caller then sleeps
// until the debt is paid, so reservations are served in the order they
// were made and the total never exceeds rate·t + burst, however many
// connections draw on it. Safe for concurrent use.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per second
	burst  float64 // bytes
	tokens float64 // may be negative: debt of earlier reservations
	last   time.Time
	now    func() time.Time
}

func newBucket(rate, burst float64, now func() time.Time) *bucket {
	return &bucket{rate: rate, burst: burst, tokens: burst, last: now(), now: now}
}

// reserve takes n bytes and returns how long to wait before sending them.
func (b *bucket) reserve(n int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// minSleep is the least debt worth sleeping for. Shorter sleeps cost more
// CPU (timer wake-ups, scheduler spinning) than they smooth; the debt is
// kept, so the next reservation waits for it and the average rate holds,
// only up to minSleep of rate may pass early.
const minSleep = 10 * time.Millisecond

// pay reserves n bytes and sleeps for the debt once it reaches minSleep.
func (b *bucket) pay(n int) {
	if wait := b.reserve(n); wait >= minSleep {
		time.Sleep(wait)
	}
}

// rateUnits are the suffixes parseRate accepts, in bytes (per second).
var rateUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
	"kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8,
}

// parseRate parses a throughput such as "100MiB", "1GiB/s", "800Mbit" or
// "12500000" (bytes per second) into bytes per second.
func parseRate(s string) (float64, error) {
	t := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "/s")
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	unit, ok := rateUnits[strings.TrimSpace(t[i:])]
	if !ok {
		return 0, fmt.Errorf("rate %q: unknown unit (B, kB, MB, GB, KiB, MiB, GiB, kbit, Mbit, Gbit per second)", s)
	}
	v, err := strconv.ParseFloat(t[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("rate %q: %w", s, err)
	}
	r := v * unit
	if r < 1 || math.IsInf(r, 0) {
		return 0, fmt.Errorf("rate %q: must be at least 1 byte per second", s)
	}
	return r, nil
}
