package upstream

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

func TestRetriesOn5xx(t *testing.T) {
	body, _ := testImage(t)
	tests := []struct {
		name     string
		failures int // answered 503 before succeeding
		retries  int
		wantErr  error
		requests int
		once     bool // call with WithoutRetries
	}{
		{name: "recovers", failures: 2, retries: 3, requests: 3},
		{name: "gives up", failures: 100, retries: 3, wantErr: ErrUnavailable, requests: 4},
		{name: "no retries", failures: 1, retries: -1, wantErr: ErrUnavailable, requests: 1},
		{name: "WithoutRetries context", failures: 1, retries: 3, wantErr: ErrUnavailable, requests: 1, once: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			srv, rec := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if int(n.Add(1)) <= tt.failures {
					ociError(w, http.StatusServiceUnavailable, oci.CodeUnavailable)
					return
				}
				manifestHandler(body, oci.MediaTypeImageManifest, true)(w, r)
			})
			c := newTestClient(t, srv.URL, func(o *Options) { o.Retries = tt.retries })
			ctx := context.Background()
			if tt.once {
				ctx = WithoutRetries(ctx)
			}
			_, err := c.GetManifest(ctx, testHost, "app", oci.Reference{Tag: "v1"})
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("GetManifest = %v, want %v", err, tt.wantErr)
			}
			if got := len(rec.all()); got != tt.requests {
				t.Errorf("requests = %d, want %d", got, tt.requests)
			}
			if got := counter(t, c.m.Retries, testHost, "manifest"); got != float64(tt.requests-1) {
				t.Errorf("retries_total = %v, want %d", got, tt.requests-1)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	body, _ := testImage(t)
	tests := []struct {
		name       string
		retryAfter func() string
		timeout    time.Duration
		wantErr    error
		minElapsed time.Duration
		maxElapsed time.Duration
	}{
		{name: "seconds", retryAfter: func() string { return "1" }, timeout: 5 * time.Second,
			minElapsed: time.Second, maxElapsed: 3 * time.Second},
		{name: "HTTP date", retryAfter: func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) },
			timeout: 5 * time.Second, minElapsed: 900 * time.Millisecond, maxElapsed: 4 * time.Second},
		{name: "beyond the timeout gives up at once", retryAfter: func() string { return "30" }, timeout: 2 * time.Second,
			wantErr: ErrRateLimited, maxElapsed: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			srv, rec := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					w.Header().Set("Retry-After", tt.retryAfter())
					ociError(w, http.StatusTooManyRequests, oci.CodeTooManyRequests)
					return
				}
				manifestHandler(body, oci.MediaTypeImageManifest, true)(w, r)
			})
			c := newTestClient(t, srv.URL, func(o *Options) { o.Timeout = tt.timeout })
			start := time.Now()
			_, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
			elapsed := time.Since(start)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("GetManifest = %v, want %v", err, tt.wantErr)
			}
			if elapsed < tt.minElapsed || elapsed > tt.maxElapsed {
				t.Errorf("GetManifest took %s, want between %s and %s", elapsed, tt.minElapsed, tt.maxElapsed)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, ErrUnavailable) {
					t.Errorf("ErrRateLimited is not an ErrUnavailable: %v", err)
				}
				if got := len(rec.all()); got != 1 {
					t.Errorf("requests = %d, want 1", got)
				}
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{" 5 ", 5 * time.Second, true},
		{"99999999999999999999999", maxRetryAfter, true},
		{"1.5", 0, false},
		{"-1", 0, false},
		{"Sat, 21 Nov 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Saturday, 21-Nov-26 12:01:00 GMT", time.Minute, true},
		{"Sat Nov 21 12:00:10 2026", 10 * time.Second, true},
		{"Fri, 20 Nov 2026 12:00:00 GMT", 0, true},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseRetryAfter(%q) = %s, %v, want %s, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	c := newTestClient(t, "http://127.0.0.1:1", func(o *Options) { o.Backoff = 100 * time.Millisecond })
	for attempt, max := range []time.Duration{100, 200, 400, 800} {
		max *= time.Millisecond
		seen := map[time.Duration]bool{}
		for i := 0; i < 200; i++ {
			d := c.backoff(attempt)
			if d < max/2 || d > max {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", attempt, d, max/2, max)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("backoff(%d) took %d distinct values in 200 draws, want jitter", attempt, len(seen))
		}
	}
	if d := c.backoff(40); d > maxBackoff {
		t.Errorf("backoff(40) = %s, want at most %s", d, maxBackoff)
	}
}

// The upstream unreachable: a cold request fails with ErrUnavailable
// within Timeout, retries included.
func TestUnreachableFailsWithinTimeout(t *testing.T) {
	refused := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr
	}
	blackhole := func(t *testing.T) string {
		// Accepts connections and never reads or answers.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var conns []net.Conn
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, conn)
				mu.Unlock()
			}
		}()
		t.Cleanup(func() {
			ln.Close()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
		return "http://" + ln.Addr().String()
	}
	const timeout = 800 * time.Millisecond
	tests := []struct {
		name    string
		url     func(*testing.T) string
		retries int
		reason  string
	}{
		{name: "connection refused", url: refused, retries: 1000, reason: reasonConnect},
		{name: "blackhole", url: blackhole, retries: 3, reason: "no answer within " + timeout.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, tt.url(t), func(o *Options) {
				o.Timeout = timeout
				o.Retries = tt.retries
				o.Backoff = 20 * time.Millisecond
			})
			ops := map[string]func() error{
				"GetManifest": func() error {
					_, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
					return err
				},
				"HeadManifest": func() error {
					_, err := c.HeadManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
					return err
				},
				"GetBlob": func() error {
					_, _, err := c.GetBlob(context.Background(), testHost, "app", oci.SHA256.FromBytes(nil), 0)
					return err
				},
				"Referrers": func() error {
					_, err := c.Referrers(context.Background(), testHost, "app", oci.SHA256.FromBytes(nil), "")
					return err
				},
			}
			for name, op := range ops {
				start := time.Now()
				err := op()
				elapsed := time.Since(start)
				if !errors.Is(err, ErrUnavailable) {
					t.Errorf("%s = %v, want ErrUnavailable", name, err)
					continue
				}
				var e *Error
				if errors.As(err, &e); e.Reason != tt.reason {
					t.Errorf("%s reason = %q, want %q (%v)", name, e.Reason, tt.reason, err)
				}
				// A hang, not a speed check: the race detector on a loaded
				// machine stretches every attempt.
				if elapsed > timeout+5*time.Second {
					t.Errorf("%s failed after %s, want about the %s timeout", name, elapsed, timeout)
				}
			}
		})
	}
}

func TestCancelledContext(t *testing.T) {
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c := newTestClient(t, srv.URL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.GetManifest(ctx, testHost, "app", oci.Reference{Tag: "v1"})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("GetManifest with an expiring ctx = %v, want ErrUnavailable wrapping DeadlineExceeded", err)
	}
}

func TestPerHostConcurrencyLimit(t *testing.T) {
	body, _ := testImage(t)
	var inflight, peak atomic.Int32
	release := make(chan struct{})
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		manifestHandler(body, oci.MediaTypeImageManifest, true)(w, r)
	})
	c := newTestClient(t, srv.URL, func(o *Options) { o.MaxConnsPerHost = 2 })
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
			errs <- err
		}()
	}
	time.Sleep(200 * time.Millisecond) // let every request reach the server or the semaphore
	if got := inflight.Load(); got != 2 {
		t.Errorf("requests in flight = %d, want 2", got)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := peak.Load(); got != 2 {
		t.Errorf("peak concurrent requests = %d, want 2", got)
	}
}

func TestSlotWaitBoundedByContext(t *testing.T) {
	blob := []byte("blob bytes")
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write(blob) })
	c := newTestClient(t, srv.URL, func(o *Options) { o.MaxConnsPerHost = 1 })
	d := oci.SHA256.FromBytes(blob)
	rc, _, err := c.GetBlob(context.Background(), testHost, "app", d, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The open blob holds the only slot: the next request waits, then gives up with its ctx.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err = c.GetBlob(ctx, testHost, "app", d, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetBlob while the slot is held = %v, want DeadlineExceeded", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("slot wait took %s, want about 100ms", el)
	}
	rc.Close()
	rc2, _, err := c.GetBlob(context.Background(), testHost, "app", d, 0)
	if err != nil {
		t.Fatalf("GetBlob after Close = %v, want the slot back", err)
	}
	rc2.Close()
}
