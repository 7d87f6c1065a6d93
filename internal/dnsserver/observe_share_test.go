package dnsserver

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/airlockdev/airlock/internal/cluster"
	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/testkit/redistest"
)

// sharedReplica is one replica's observations shared through its own
// Cluster on r.
type sharedReplica struct {
	cl  *cluster.Cluster
	obs *Observations
	sh  *Sharer
}

func newSharedReplica(t *testing.T, r *redistest.Redis, name string) *sharedReplica {
	t.Helper()
	cl, err := cluster.New(cluster.Config{Name: name, Redis: cluster.RedisConfig{Addresses: []string{r.Addr}, KeyPrefix: "test:"}},
		cluster.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("cluster.New: %v", err)
	}
	if err := cl.Start(context.Background()); err != nil {
		t.Fatalf("cluster Start: %v", err)
	}
	obs := NewObservations(0)
	sh := obs.Share(cl, ShareDeps{Registerer: prometheus.NewRegistry()})
	if err := sh.Start(context.Background()); err != nil {
		t.Fatalf("Sharer Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := sh.Shutdown(ctx); err != nil {
			t.Errorf("Sharer Shutdown: %v", err)
		}
		if err := cl.Shutdown(ctx); err != nil {
			t.Errorf("cluster Shutdown: %v", err)
		}
	})
	s := &sharedReplica{cl: cl, obs: obs, sh: sh}
	s.waitUp(t)
	return s
}

// waitUp waits until the publisher knows Redis is up.
func (s *sharedReplica) waitUp(t *testing.T) {
	t.Helper()
	waitUntil(t, "sharing up", func() bool { return s.sh.sh.up.Load() })
}

func (s *sharedReplica) published() float64 {
	return testutil.ToFloat64(s.sh.sh.m.shared.WithLabelValues(sharePublished))
}

func (s *sharedReplica) lookups(result string) float64 {
	return testutil.ToFloat64(s.sh.sh.m.lookups.WithLabelValues(result))
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stepClock returns a clock near the real time (Redis filters expiries on
// the real clock) that moves one askAgainAfter per call, so that every
// LookupNames may ask Redis.
func stepClock() func() time.Time {
	var mu sync.Mutex
	t := time.Now()
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(askAgainAfter)
		return t
	}
}

func mustName(t testing.TB, s string) dnsname.Name {
	t.Helper()
	n, err := dnsname.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func names(ns ...dnsname.Name) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.String())
	}
	return out
}

// lookupEventually asks b until it learns what a published (publishing is
// asynchronous).
func lookupEventually(t *testing.T, b *sharedReplica, addr netip.Addr, now func() time.Time) []dnsname.Name {
	t.Helper()
	var got []dnsname.Name
	waitUntil(t, "names of "+addr.String()+" through redis", func() bool {
		var ok bool
		got, ok = b.obs.LookupNames(context.Background(), addr, now())
		return ok
	})
	return got
}

// An address A's DNS answered is found by B on a miss, with its expiry;
// names for one address from two replicas are both seen; an address
// nobody answered is a miss.
func TestSharedObservationsAcrossReplicas(t *testing.T) {
	r := redistest.Start(t)
	a, b := newSharedReplica(t, r, "a"), newSharedReplica(t, r, "b")
	now := stepClock()
	addr := netip.MustParseAddr("198.18.0.10")
	x, y := mustName(t, "x.example"), mustName(t, "y.example")

	t0 := now()
	exp := t0.Add(10 * time.Minute)
	a.obs.Record(addr, []dnsname.Name{x}, exp, t0)
	if got := b.obs.NamesFor(addr, t0); len(got) != 0 {
		t.Fatalf("B NamesFor before any look-up = %v, want none (local only)", got)
	}
	got := lookupEventually(t, b, addr, now)
	if !slices.Equal(names(got...), []string{"x.example"}) {
		t.Fatalf("B LookupNames = %v, want [x.example]", got)
	}
	// Kept locally with A's expiry: NamesFor answers without Redis.
	if got := b.obs.NamesFor(addr, exp.Add(-time.Second)); len(got) != 1 {
		t.Errorf("B NamesFor just before the expiry = %v, want [x.example]", got)
	}
	if got := b.obs.NamesFor(addr, exp); len(got) != 0 {
		t.Errorf("B NamesFor at the expiry = %v, want none", got)
	}

	// B's DNS answers y for the same address: A finds both names.
	b.obs.Record(addr, []dnsname.Name{y}, now().Add(10*time.Minute), now())
	waitUntil(t, "A learns y", func() bool {
		got, _ := a.obs.LookupNames(context.Background(), addr, now())
		return len(got) == 2
	})
	if got := a.obs.NamesFor(addr, now()); !slices.Equal(names(got...), []string{"x.example", "y.example"}) {
		t.Errorf("A NamesFor = %v, want x.example and y.example", got)
	}

	other := netip.MustParseAddr("198.18.0.11")
	if got, ok := b.obs.LookupNames(context.Background(), other, now()); ok || len(got) != 0 {
		t.Errorf("LookupNames of an address nobody answered = %v, %v; want none, false", got, ok)
	}
	if b.lookups(lookupMiss) == 0 || b.lookups(lookupHit) == 0 {
		t.Errorf("B lookups hit %v miss %v, want both counted", b.lookups(lookupHit), b.lookups(lookupMiss))
	}
}

// A pair whose expiry has passed in Redis is not learnt.
func TestSharedObservationsExpire(t *testing.T) {
	r := redistest.Start(t)
	a, b := newSharedReplica(t, r, "a"), newSharedReplica(t, r, "b")
	addr := netip.MustParseAddr("198.18.0.20")
	start := time.Now()
	exp := start.Add(300 * time.Millisecond)
	a.obs.Record(addr, []dnsname.Name{mustName(t, "short.example")}, exp, start)
	waitUntil(t, "published", func() bool { return a.published() == 1 })
	for time.Now().Before(exp.Add(10 * time.Millisecond)) {
		time.Sleep(10 * time.Millisecond)
	}
	if got, ok := b.obs.LookupNames(context.Background(), addr, time.Now()); ok || len(got) != 0 {
		t.Errorf("LookupNames after the expiry = %v, %v; want none", got, ok)
	}
}

// A pair answered over and over is published once, and again only when
// its expiry moved forward by more than the slack.
func TestSharedObservationsPublishOnce(t *testing.T) {
	r := redistest.Start(t)
	a := newSharedReplica(t, r, "a")
	addr := netip.MustParseAddr("198.18.0.30")
	n := []dnsname.Name{mustName(t, "hot.example")}
	now := time.Now()
	exp := now.Add(time.Minute)
	for i := range 10000 {
		// Forward by less than the slack (1 s) in all.
		a.obs.Record(addr, n, exp.Add(time.Duration(i)*50*time.Microsecond), now)
	}
	waitUntil(t, "first publication", func() bool { return a.published() >= 1 })
	a.obs.Record(addr, n, exp.Add(2*time.Second), now)
	waitUntil(t, "second publication", func() bool { return a.published() >= 2 })
	a.obs.Record(addr, n, exp.Add(2*time.Second), now)
	// One more pair behind it: once it is published, nothing else was.
	a.obs.Record(netip.MustParseAddr("198.18.0.31"), n, exp, now)
	waitUntil(t, "marker publication", func() bool { return a.published() >= 3 })
	if got := a.published(); got != 3 {
		t.Errorf("published = %v for 10002 records of one pair and one other, want 3", got)
	}
}

// Redis down: look-ups answer at once with local data only, records are
// kept; Redis back (empty): what was recorded meanwhile is shared.
func TestSharedObservationsRedisDownAndBack(t *testing.T) {
	r := redistest.Start(t)
	a, b := newSharedReplica(t, r, "a"), newSharedReplica(t, r, "b")
	now := stepClock()
	addr := netip.MustParseAddr("198.18.0.40")
	x := mustName(t, "x.example")

	r.Stop()
	ctx := context.Background()
	// The first failed call, or the health loop, marks each degraded.
	b.obs.LookupNames(ctx, addr, now())
	waitUntil(t, "B degraded", func() bool { d, _ := b.cl.Degraded(); return d })
	waitUntil(t, "A degraded", func() bool { d, _ := a.cl.Degraded(); return d })
	waitUntil(t, "A sharing paused", func() bool { return !a.sh.sh.up.Load() })

	t0 := now()
	a.obs.Record(addr, []dnsname.Name{x}, t0.Add(10*time.Minute), t0)
	if got := a.obs.NamesFor(addr, t0); len(got) != 1 {
		t.Fatalf("A NamesFor while Redis is down = %v, want its own observation", got)
	}
	before := b.lookups(shareUnavailable)
	if got, ok := b.obs.LookupNames(ctx, addr, now()); ok || len(got) != 0 {
		t.Errorf("B LookupNames while Redis is down = %v, %v; want none", got, ok)
	}
	if b.lookups(shareUnavailable) != before+1 {
		t.Errorf("B lookups unavailable = %v, want %v", b.lookups(shareUnavailable), before+1)
	}

	r.Restart()
	a.waitUp(t)
	b.waitUp(t)
	got := lookupEventually(t, b, addr, now)
	if !slices.Equal(names(got...), []string{"x.example"}) {
		t.Errorf("B LookupNames after Redis is back = %v, want the pair A recorded while it was down", got)
	}
}

// Redis paused (partitioned) and a full queue: Record never waits; the
// pairs it could not queue are published once Redis answers again.
func TestSharedObservationsRecordNeverWaits(t *testing.T) {
	oldLen, oldEvery := shareQueueLen, shareCheckEvery
	shareQueueLen, shareCheckEvery = 16, 50*time.Millisecond
	r := redistest.Start(t)
	a, b := newSharedReplica(t, r, "a"), newSharedReplica(t, r, "b")
	shareQueueLen, shareCheckEvery = oldLen, oldEvery

	rc := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rc.Close()
	if err := rc.Do(context.Background(), "CLIENT", "PAUSE", "2000", "ALL").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	const pairs = 200
	n := []dnsname.Name{mustName(t, "many.example")}
	done := make(chan struct{})
	go func() {
		defer close(done)
		now := time.Now()
		for i := range pairs {
			a.obs.Record(netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}), n, now.Add(10*time.Minute), now)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked while Redis was paused")
	}
	if full := testutil.ToFloat64(a.sh.sh.m.shared.WithLabelValues(shareQueueFull)); full == 0 {
		t.Errorf("queue_full = 0 after %d pairs into a queue of 16 with Redis paused, want some", pairs)
	}
	waitUntil(t, "every pair published", func() bool { return a.published() == pairs })
	got := lookupEventually(t, b, netip.AddrFrom4([4]byte{198, 18, 1, pairs - 1}), stepClock())
	if !slices.Equal(names(got...), []string{"many.example"}) {
		t.Errorf("B LookupNames of the last pair = %v, want [many.example]", got)
	}
}

// A flood of look-ups for one address costs one Redis read per
// askAgainAfter.
func TestSharedObservationsThrottled(t *testing.T) {
	r := redistest.Start(t)
	b := newSharedReplica(t, r, "b")
	addr := netip.MustParseAddr("198.18.0.50")
	now := time.Now()
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.obs.LookupNames(context.Background(), addr, now)
		}()
	}
	wg.Wait()
	reads := b.lookups(lookupMiss) + b.lookups(lookupHit) + b.lookups(lookupError) + b.lookups(shareUnavailable)
	if reads != 1 {
		t.Errorf("100 concurrent look-ups: %v reads (and %v throttled), want 1", reads, b.lookups(lookupThrottled))
	}
	before := reads
	for range 100 {
		b.obs.LookupNames(context.Background(), addr, now.Add(askAgainAfter/2))
	}
	reads = b.lookups(lookupMiss) + b.lookups(lookupHit)
	if reads != before {
		t.Errorf("reads within askAgainAfter = %v, want still %v", reads, before)
	}
	b.obs.LookupNames(context.Background(), addr, now.Add(askAgainAfter))
	if got := b.lookups(lookupMiss) + b.lookups(lookupHit); got != before+1 {
		t.Errorf("reads after askAgainAfter = %v, want %v", got, before+1)
	}
}

// Members in Redis that are no host name are skipped and counted.
func TestSharedObservationsBadMembers(t *testing.T) {
	r := redistest.Start(t)
	b := newSharedReplica(t, r, "b")
	addr := netip.MustParseAddr("198.18.0.60")
	exp := time.Now().Add(time.Hour)
	err := b.cl.AddToSets(context.Background(), []cluster.SetAdd{
		{Key: obsKey(addr), SetMember: cluster.SetMember{Member: "not a name!", Expires: exp}},
		{Key: obsKey(addr), SetMember: cluster.SetMember{Member: "10.0.0.1", Expires: exp}},
		{Key: obsKey(addr), SetMember: cluster.SetMember{Member: "good.example", Expires: exp}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := b.obs.LookupNames(context.Background(), addr, time.Now())
	if !ok || !slices.Equal(names(got...), []string{"good.example"}) {
		t.Errorf("LookupNames = %v, %v; want [good.example]", got, ok)
	}
	if bad := testutil.ToFloat64(b.sh.sh.m.bad); bad != 2 {
		t.Errorf("bad members counted = %v, want 2", bad)
	}
}

// Unshared observations never ask anyone.
func TestLookupNamesUnshared(t *testing.T) {
	o := NewObservations(0)
	if got, ok := o.LookupNames(context.Background(), netip.MustParseAddr("198.18.0.1"), time.Now()); ok || got != nil {
		t.Errorf("LookupNames unshared = %v, %v; want nil, false", got, ok)
	}
}

func TestParseShared(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ms := []cluster.SetMember{
		{Member: "a.example", Expires: now.Add(time.Minute)},
		{Member: "B.Example.", Expires: now.Add(48 * time.Hour)}, // cut to maxLife
		{Member: "old.example", Expires: now},                    // expired: skipped, not bad
		{Member: "", Expires: now.Add(time.Minute)},
		{Member: "ok.example"}, // no expiry
	}
	ns, exps, bad := parseShared(ms, now, time.Hour)
	if !slices.Equal(names(ns...), []string{"a.example", "b.example"}) || bad != 2 {
		t.Fatalf("parseShared = %v, bad %d; want a.example b.example, bad 2", ns, bad)
	}
	if !exps[0].Equal(now.Add(time.Minute)) || !exps[1].Equal(now.Add(time.Hour)) {
		t.Errorf("expiries = %v, want +1m and +1h (cut)", exps)
	}
}

func FuzzParseShared(f *testing.F) {
	f.Add("a.example", int64(60_000))
	f.Add("", int64(0))
	f.Add("\xff*..", int64(-1))
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, member string, ms int64) {
		m := cluster.SetMember{Member: member}
		if ms != 0 {
			m.Expires = now.Add(time.Duration(ms) * time.Millisecond)
		}
		ns, exps, bad := parseShared([]cluster.SetMember{m}, now, time.Hour)
		if len(ns)+bad > 1 || len(ns) != len(exps) {
			t.Fatalf("parseShared(%q, %d) = %v, %v, bad %d", member, ms, ns, exps, bad)
		}
		for i, e := range exps {
			if !e.After(now) || e.After(now.Add(time.Hour)) || ns[i].IsZero() {
				t.Fatalf("parseShared(%q, %d) kept %v until %v", member, ms, ns[i], e)
			}
		}
	})
}

// BenchmarkRecordHot is the DNS path's cost of recording a pair answered
// over and over (the fast path replays one expiry), unshared and shared.
func BenchmarkRecordHot(b *testing.B) {
	r := redistest.Start(b)
	addr := netip.MustParseAddr("198.18.2.1")
	n := []dnsname.Name{mustName(b, "hot.example")}
	for _, shared := range []bool{false, true} {
		b.Run("shared="+strconv.FormatBool(shared), func(b *testing.B) {
			o := NewObservations(0)
			if shared {
				cl, err := cluster.New(cluster.Config{Name: "a", Redis: cluster.RedisConfig{Addresses: []string{r.Addr}, KeyPrefix: "bench:"}}, cluster.Deps{})
				if err != nil {
					b.Fatal(err)
				}
				cl.Start(context.Background())
				defer cl.Shutdown(context.Background())
				sh := o.Share(cl, ShareDeps{})
				sh.Start(context.Background())
				defer sh.Shutdown(context.Background())
				for !sh.sh.up.Load() {
					time.Sleep(10 * time.Millisecond)
				}
			}
			now := time.Now()
			exp := now.Add(time.Hour)
			b.ResetTimer()
			for range b.N {
				o.Record(addr, n, exp, now)
			}
		})
	}
}

// BenchmarkLookupNamesRedis is a gateway look-up that reads Redis (a
// different address each time, so neither throttle nor local copy helps).
func BenchmarkLookupNamesRedis(b *testing.B) {
	r := redistest.Start(b)
	cl, err := cluster.New(cluster.Config{Name: "b", Redis: cluster.RedisConfig{Addresses: []string{r.Addr}, KeyPrefix: "bench:"}}, cluster.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	cl.Start(context.Background())
	defer cl.Shutdown(context.Background())
	for d, _ := cl.Degraded(); d; d, _ = cl.Degraded() {
		time.Sleep(10 * time.Millisecond)
	}
	o := NewObservations(0)
	o.Share(cl, ShareDeps{})
	now := time.Now()
	b.ResetTimer()
	for i := range b.N {
		o.LookupNames(context.Background(), netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), now)
	}
}
