package cluster

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/logcap"
	"github.com/airlockdev/airlock/internal/testkit/redistest"
	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	// Short timings for tests (only tests change them).
	healthInterval = 100 * time.Millisecond
	pollInterval = 100 * time.Millisecond
	versionInterval = 100 * time.Millisecond
	versionTTL = time.Second
	callTimeout = 300 * time.Millisecond
}

// replica starts a Cluster named name on r.
func replica(t *testing.T, r *redistest.Redis, name string) *Cluster {
	t.Helper()
	return replicaLog(t, r, name, nil)
}

func replicaLog(t *testing.T, r *redistest.Redis, name string, log *slog.Logger) *Cluster {
	t.Helper()
	c, err := New(Config{Name: name, Redis: RedisConfig{Address: r.Addr, KeyPrefix: "test:"}},
		Deps{Registerer: prometheus.NewRegistry(), Logger: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	waitFor(t, "redis up on "+name, func() bool { d, _ := c.Degraded(); return !d })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLeaseOneWinner(t *testing.T) {
	r := redistest.Start(t)
	a, b := replica(t, r, "a"), replica(t, r, "b")
	ctx := context.Background()

	var wins atomic.Int32
	var mu sync.Mutex
	var held *Lease
	var wg sync.WaitGroup
	for i := range 20 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, ok, err := c.TryLease(ctx, "blob", 5*time.Second)
			if err != nil {
				t.Errorf("TryLease: %v", err)
			}
			if ok {
				wins.Add(1)
				mu.Lock()
				held = l
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Fatalf("winners of 20 concurrent TryLease = %d, want 1", got)
	}
	if held.Local() {
		t.Fatal("lease is local with Redis up, want a Redis lease")
	}

	// The other replica waits; Release wakes it.
	other := a
	if held.c == a {
		other = b
	}
	waited := make(chan error, 1)
	go func() { waited <- other.WaitLease(ctx, "blob") }()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-waited:
		t.Fatalf("WaitLease returned %v while the lease is held", err)
	default:
	}
	held.Release()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("WaitLease = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitLease did not return after Release")
	}
	l, ok, _ := other.TryLease(ctx, "blob", time.Second)
	if !ok {
		t.Fatal("TryLease after Release = busy, want the lease")
	}
	l.Release()
}

func TestLeaseTakeoverAfterHolderDies(t *testing.T) {
	r := redistest.Start(t)
	a, b := replica(t, r, "a"), replica(t, r, "b")
	ctx := context.Background()
	ttl := 500 * time.Millisecond

	la, ok, _ := a.TryLease(ctx, "fill", ttl)
	if !ok {
		t.Fatal("a: TryLease = busy, want the lease")
	}
	la.stopRenewal() // a "dies": no more renewals, no release

	if err := b.WaitLease(ctx, "fill"); err != nil { // returns on expiry (polling)
		t.Fatalf("WaitLease = %v", err)
	}
	lb, ok, _ := b.TryLease(ctx, "fill", 5*time.Second)
	if !ok {
		t.Fatal("b: TryLease after a's lease expired = busy, want takeover")
	}
	defer lb.Release()

	// a's late renewal and release must not touch b's lease.
	n, err := renewScript.Run(ctx, a.rdb, []string{a.leaseKey("fill")}, la.token, 60000).Int()
	if err != nil || n != 0 {
		t.Fatalf("stale renew = %d, %v; want 0, nil", n, err)
	}
	la.Release()
	got, err := b.rdb.Get(ctx, b.leaseKey("fill")).Result()
	if err != nil || got != lb.token {
		t.Fatalf("lease key after stale release = %q, %v; want b's token %q", got, err, lb.token)
	}
	// a's renewal loop, had it run, reports the loss.
	la2 := &Lease{c: a, key: "fill", token: la.token, ttl: 300 * time.Millisecond,
		lost: make(chan struct{}), done: make(chan struct{}), stop: make(chan struct{})}
	go la2.renew()
	select {
	case <-la2.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("renewal of a taken-over lease did not report Lost")
	}
}

func TestRedisDownAndBack(t *testing.T) {
	r := redistest.Start(t)
	logs := logcap.New("")
	a := replicaLog(t, r, "a", logs.Logger())
	ctx := context.Background()

	if err := a.Put(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if v, ok, err := a.Get(ctx, "k"); err != nil || !ok || string(v) != "v" {
		t.Fatalf("Get = %q, %v, %v; want v, true, nil", v, ok, err)
	}

	r.Stop()
	start := time.Now()
	// The first failed call (or the health loop) marks degraded.
	a.Put(ctx, "k", []byte("v2"), time.Minute)
	waitFor(t, "degraded", func() bool { d, _ := a.Degraded(); return d })
	if d, why := a.Degraded(); !d || why == "" {
		t.Fatalf("Degraded() = %v, %q; want true with a reason", d, why)
	}
	if err := a.Put(ctx, "k", []byte("v3"), time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Put while down = %v, want ErrUnavailable", err)
	}
	if _, ok, err := a.Get(ctx, "k"); ok || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get while down = %v, %v; want miss, ErrUnavailable", ok, err)
	}
	l, ok, err := a.TryLease(ctx, "blob", time.Second)
	if err != nil || !ok || !l.Local() {
		t.Fatalf("TryLease while down = %v, %v; want a local lease", ok, err)
	}
	if _, ok, _ := a.TryLease(ctx, "blob", time.Second); ok {
		t.Fatal("second local TryLease = ok, want busy (one holder per process)")
	}
	waited := make(chan struct{})
	go func() { a.WaitLease(ctx, "blob"); close(waited) }()
	l.Release()
	<-waited
	if time.Since(start) > 5*time.Second {
		t.Errorf("calls while Redis is down took %v, want well under 5s", time.Since(start))
	}

	r.Restart()
	waitFor(t, "recovery", func() bool { d, _ := a.Degraded(); return !d })
	l, ok, _ = a.TryLease(ctx, "blob", time.Second)
	if !ok || l.Local() {
		t.Fatalf("TryLease after recovery = %v, local %v; want a Redis lease", ok, l != nil && l.Local())
	}
	l.Release()
	if err := a.Put(ctx, "k", []byte("v4"), time.Minute); err != nil {
		t.Fatalf("Put after recovery: %v", err)
	}
	var got []string
	for _, rec := range logs.Records(t) {
		got = append(got, rec["msg"].(string))
	}
	want := []string{msgRecovered, msgDegraded, msgRecovered} // one line per transition, not per failed call
	if !slices.Equal(got, want) {
		t.Errorf("log messages = %q, want %q", got, want)
	}
}

// TestRedisPaused stands for a partitioned Redis: connected, not
// answering. Calls end at callTimeout instead of hanging.
func TestRedisPaused(t *testing.T) {
	r := redistest.Start(t)
	a := replica(t, r, "a")
	ctx := context.Background()
	if err := a.rdb.Do(ctx, "CLIENT", "PAUSE", "3000", "ALL").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	start := time.Now()
	if err := a.Put(ctx, "k", []byte("v"), time.Minute); err == nil {
		t.Fatal("Put to a paused Redis = nil, want an error")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Put to a paused Redis took %v, want about callTimeout %v", took, callTimeout)
	}
	if d, _ := a.Degraded(); !d {
		t.Fatal("Degraded() = false after a timed-out call, want true")
	}
	l, ok, _ := a.TryLease(ctx, "blob", time.Second)
	if !ok || !l.Local() {
		t.Fatal("TryLease while paused: want a local lease at once")
	}
	l.Release()
	waitFor(t, "recovery after the pause", func() bool { d, _ := a.Degraded(); return !d })
}

func TestRedisLeaseLostWhenRedisDown(t *testing.T) {
	r := redistest.Start(t)
	a := replica(t, r, "a")
	l, ok, _ := a.TryLease(context.Background(), "blob", 400*time.Millisecond)
	if !ok || l.Local() {
		t.Fatal("want a Redis lease")
	}
	r.Stop()
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("lease not lost after Redis went away past its ttl")
	}
	l.Release()
}

func TestSingletonNeverOverlaps(t *testing.T) {
	r := redistest.Start(t)
	a, b := replica(t, r, "a"), replica(t, r, "b")
	ctx, cancel := context.WithCancel(context.Background())

	type run struct {
		who        string
		start, end time.Time
	}
	var mu sync.Mutex
	var runs []run
	job := func(who string) func(context.Context) error {
		return func(ctx context.Context) error {
			s := time.Now()
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			runs = append(runs, run{who, s, time.Now()})
			mu.Unlock()
			return nil
		}
	}
	interval := 200 * time.Millisecond
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.RunSingleton(ctx, "gc", interval, job("a")) }()
	go func() { defer wg.Done(); b.RunSingleton(ctx, "gc", interval, job("b")) }()
	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(runs) < 5 || len(runs) > 11 {
		t.Errorf("runs in 2s with interval %v = %d, want about 8 (once per interval)", interval, len(runs))
	}
	for i := 1; i < len(runs); i++ {
		if runs[i].start.Before(runs[i-1].end) {
			t.Errorf("run %d (%s) started before run %d (%s) ended", i, runs[i].who, i-1, runs[i-1].who)
		}
		if gap := runs[i].start.Sub(runs[i-1].start); gap < interval-20*time.Millisecond {
			t.Errorf("runs %d and %d started %v apart, want ≥ interval %v", i-1, i, gap, interval)
		}
	}
}

func TestVersionMismatch(t *testing.T) {
	r := redistest.Start(t)
	a, b := replica(t, r, "a"), replica(t, r, "b")
	a.SetVersions("cfg1", "pol1", "v1")
	b.SetVersions("cfg1", "pol1", "v2")
	waitFor(t, "peers", func() bool {
		return len(a.Peers()) == 1 && len(b.Peers()) == 1 && b.Peers()[0].Binary == "v1" && a.Peers()[0].Binary == "v2"
	})
	if m, why := a.Mismatch(); m {
		t.Fatalf("a.Mismatch() = true, %q with the same config and policy, want false", why)
	}
	b.SetVersions("cfg2", "pol1", "v2")
	waitFor(t, "mismatch on both", func() bool {
		ma, _ := a.Mismatch()
		mb, _ := b.Mismatch()
		return ma && mb
	})
	_, whyA := a.Mismatch()
	_, whyB := b.Mismatch()
	if !strings.Contains(whyA, "b runs config cfg2") || !strings.Contains(whyB, "a runs config cfg1") {
		t.Fatalf("Mismatch reasons = %q / %q; want each to name the other replica", whyA, whyB)
	}
}

func TestNoRedisIsLocal(t *testing.T) {
	c, err := New(Config{Name: "solo"}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown(context.Background())
	if d, _ := c.Degraded(); d {
		t.Fatal("Degraded() = true without Redis, want false")
	}
	l, ok, _ := c.TryLease(context.Background(), "x", time.Second)
	if !ok || !l.Local() {
		t.Fatal("TryLease without Redis: want a local lease")
	}
	l.Release()
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		path string
	}{
		{"bad address", Config{Redis: RedisConfig{Addresses: []string{"nope"}}}, "redis.addresses[0]"},
		{"sentinels without master", Config{Redis: RedisConfig{Addresses: []string{"a:1", "b:1"}}}, "redis.addresses"},
		{"password in env name", Config{Redis: RedisConfig{Addresses: []string{"a:1"}, PasswordEnv: "hunter 2"}}, "redis.passwordEnv"},
		{"bad single address", Config{Redis: RedisConfig{Address: "nope"}}, "redis.address"},
		{"address and addresses", Config{Redis: RedisConfig{Address: "a:1", Addresses: []string{"b:1"}}}, "redis.address"},
		{"ca without tls", Config{Redis: RedisConfig{Addresses: []string{"a:1"}, TLS: TLSConfig{CAFile: "x"}}}, "redis.tls.enabled"},
		{"advertise not a URL", Config{Advertise: "10.0.0.4:5000"}, "advertise"},
		{"advertise ftp", Config{Advertise: "ftp://10.0.0.4"}, "advertise"},
		{"advertise with path", Config{Advertise: "http://10.0.0.4:5000/v2"}, "advertise"},
		{"advertise with query", Config{Advertise: "http://10.0.0.4:5000?x=1"}, "advertise"},
		{"advertise without host", Config{Advertise: "http://:5000"}, "advertise"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			tc.cfg.Validate(func(p, _ string) { got = append(got, p) })
			if len(got) != 1 || got[0] != tc.path {
				t.Errorf("Validate reported %v, want [%s]", got, tc.path)
			}
		})
	}
	ok := Config{Advertise: "https://gw1.example.internal:5000/", Redis: RedisConfig{Addresses: []string{"127.0.0.1:6379"}, PasswordEnv: "REDIS_PASSWORD"}}
	ok.Validate(func(p, m string) { t.Errorf("valid config: %s: %s", p, m) })
}

func FuzzParseVersionRecord(f *testing.F) {
	f.Add([]byte(`{"name":"a","config":"c","policy":"p","binary":"b"}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseVersionRecord(b)
		if err == nil && p.Name == "" {
			t.Fatal("parsed a record without a name")
		}
	})
}

// BenchmarkOps measures the Redis-backed operations callers wait on.
//
//	AIRLOCK_REQUIRE_TOOLS=1 go test -run '^$' -bench Ops ./internal/cluster/
func BenchmarkOps(b *testing.B) {
	r := redistest.Start(b)
	c, err := New(Config{Name: "bench", Redis: RedisConfig{Addresses: []string{r.Addr}}}, Deps{})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer c.Shutdown(context.Background())
	for !c.isUp() {
		time.Sleep(10 * time.Millisecond)
	}
	ctx := context.Background()
	b.Run("TryLease+Release", func(b *testing.B) {
		for b.Loop() {
			l, ok, _ := c.TryLease(ctx, "k", time.Minute)
			if !ok || l.Local() {
				b.Fatal("want a Redis lease")
			}
			l.Release()
		}
	})
	b.Run("Put", func(b *testing.B) {
		for b.Loop() {
			if err := c.Put(ctx, "k", []byte("10.0.0.1"), time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Get", func(b *testing.B) {
		for b.Loop() {
			if _, ok, err := c.Get(ctx, "k"); !ok || err != nil {
				b.Fatal("want a hit")
			}
		}
	})
}
