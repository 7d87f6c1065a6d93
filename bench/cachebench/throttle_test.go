package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"100MiB", 100 << 20, true},
		{"1GiB/s", 1 << 30, true},
		{"1.5 MB", 1.5e6, true},
		{"800Mbit", 1e8, true},
		{"12500000", 12500000, true},
		{"64kib", 64 << 10, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"100 parsecs", 0, false},
		{"0.5", 0, false},
		{"1e3MB", 0, false},
		{"1..2MB", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseRate(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseRate(%q) = %v, %v, want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"100MiB", "1GiB/s", "800Mbit", "7", "", "1e9", "NaN", "Inf GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseRate(s)
		if err == nil && !(r >= 1 && r < 1e300) {
			t.Errorf("parseRate(%q) = %v, accepted a rate below 1 B/s or not finite", s, r)
		}
	})
}

func TestBucketReserve(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	b := newBucket(1000, 500, func() time.Time { return now }) // 1000 B/s, 500 B banked
	steps := []struct {
		at   time.Duration // since t0
		n    int
		want time.Duration
	}{
		{0, 400, 0},                                // from the bank: 100 left
		{0, 300, 200 * time.Millisecond},           // 200 owed
		{0, 100, 300 * time.Millisecond},           // queued behind: 300 owed
		{time.Second, 100, 0},                      // 1000 earned, capped at 500: 400 left
		{time.Second, 900, 500 * time.Millisecond}, // 500 owed
		{10 * time.Second, 500, 0},                 // idle: bank full again, 0 left
	}
	for i, s := range steps {
		now = t0.Add(s.at)
		if got := b.reserve(s.n); got != s.want {
			t.Errorf("step %d: reserve(%d) at +%v = %v, want %v", i, s.n, s.at, got, s.want)
		}
	}
}

// sink accepts connections on a loopback port, reads each to EOF, then
// answers with reply and closes: a request/response peer that relies on
// the proxy passing a half-close.
func sink(t *testing.T, reply []byte) (addr string, got func() [][]byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var mu sync.Mutex
	var bodies [][]byte
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				mu.Lock()
				bodies = append(bodies, b)
				mu.Unlock()
				_, _ = c.Write(reply)
			})
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), func() [][]byte {
		mu.Lock()
		defer mu.Unlock()
		return bodies
	}
}

// startThrottle runs a throttle to target until the test ends.
func startThrottle(t *testing.T, target string, rate, burst float64) (*throttle, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	th := newThrottle(target, rate, burst, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- th.serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return th, ln.Addr().String()
}

// exchange sends req through addr, half-closes, and returns the reply.
func exchange(addr string, req []byte) ([]byte, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return nil, err
	}
	return io.ReadAll(c)
}

func random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("rand: %v", err)
	}
	return b
}

func TestThrottleCarriesBothWays(t *testing.T) {
	reply := random(t, 3<<20)
	target, got := sink(t, reply)
	th, addr := startThrottle(t, target, 1<<30, 1<<20)
	req := random(t, 1<<20)
	resp, err := exchange(addr, req)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if !bytes.Equal(resp, reply) {
		t.Errorf("reply through the throttle: %d bytes, differs from the %d sent", len(resp), len(reply))
	}
	if b := got(); len(b) != 1 || !bytes.Equal(b[0], req) {
		t.Errorf("target received %d requests, want the one sent, intact", len(b))
	}
	if th.bytesUp.Load() != int64(len(req)) || th.bytesDown.Load() != int64(len(reply)) {
		t.Errorf("bytes up/down = %d/%d, want %d/%d", th.bytesUp.Load(), th.bytesDown.Load(), len(req), len(reply))
	}
}

// TestThrottleSharedRate: two connections together get the rate, not
// each of them: 2 × 2 MiB at 8 MiB/s with 0.5 MiB banked takes at least
// 3.5/8 s (less minSleep); with a bucket per connection it would take
// 1.5/8 s.
func TestThrottleSharedRate(t *testing.T) {
	const rate, burst, each = 8 << 20, 512 << 10, 2 << 20
	body := random(t, each)
	target, _ := sink(t, nil)
	_, addr := startThrottle(t, target, rate, burst)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			if _, err := exchange(addr, body); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("exchange: %v", err)
	}
	elapsed := time.Since(start)
	minWant := time.Duration(float64(2*each-burst)/rate*float64(time.Second)) - minSleep
	if elapsed < minWant || elapsed > 4*minWant {
		t.Errorf("2 × %d bytes at %d B/s shared took %v, want between %v and %v", each, rate, elapsed, minWant, 4*minWant)
	}
}

// TestThrottleTargetDown: with nothing listening at the target, a client
// is accepted and then closed, and the throttle keeps serving.
func TestThrottleTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	dead := ln.Addr().String()
	ln.Close()
	th, addr := startThrottle(t, dead, 1<<20, 1<<20)
	for i := range 2 {
		resp, err := exchange(addr, []byte("GET / HTTP/1.0\r\n\r\n"))
		if len(resp) != 0 {
			t.Errorf("exchange %d with the target down = %q, %v, want no bytes", i, resp, err)
		}
	}
	if n := th.conns.Load(); n != 2 {
		t.Errorf("conns = %d, want 2", n)
	}
}
