package dnsserver

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func answerFor(i int) (cacheKey, *dns.Msg) {
	name := "n" + strconv.Itoa(i) + ".test"
	m := new(dns.Msg)
	m.SetQuestion(name+".", dns.TypeA)
	rr, _ := dns.NewRR(name + ". 300 IN A 192.0.2.1")
	m.Answer = []dns.RR{rr}
	return cacheKey{name: name, qtype: dns.TypeA}, m
}

// A full cache makes room one entry at a time, oldest first: every insert
// drops at most 1 + fifoExtraDrops entries and never walks the cache (the
// old eviction walked all of it every tenth of the bound: 10–20 ms with the
// lock held at 100,000 entries).
func TestEvictionDropsOldestOnly(t *testing.T) {
	c := newAnswerCache(100, time.Hour)
	now := time.Unix(1000, 0)
	for i := range 1000 {
		k, m := answerFor(i)
		before := c.m.dropped
		c.put(k, m, now)
		if n := c.len(); n > 100 {
			t.Fatalf("after %d inserts the cache holds %d entries, bound 100", i+1, n)
		}
		if d := c.m.dropped - before; d > 1+fifoExtraDrops {
			t.Fatalf("insert %d dropped %d entries, want ≤ %d", i+1, d, 1+fifoExtraDrops)
		}
	}
	// Exactly the 100 newest remain (nothing expired: one drop per insert).
	for i := range 1000 {
		k, _ := answerFor(i)
		if _, _, ok := c.get(k, now); ok != (i >= 900) {
			t.Errorf("entry %d cached = %v, want %v", i, ok, i >= 900)
		}
	}
	if c.m.dropped != 900 {
		t.Errorf("dropped %d entries, want 900", c.m.dropped)
	}
}

// Storing a key again makes it the newest; entries past their stale window
// leave from the old end ahead of the bound.
func TestEvictionOrder(t *testing.T) {
	c := newAnswerCache(3, time.Minute)
	now := time.Unix(1000, 0)
	k0, m0 := answerFor(0)
	k1, m1 := answerFor(1)
	k2, m2 := answerFor(2)
	k3, m3 := answerFor(3)
	c.put(k0, m0, now)
	c.put(k1, m1, now)
	c.put(k2, m2, now)
	c.put(k0, m0, now) // k0 is the newest now
	c.put(k3, m3, now) // drops k1, the oldest
	for _, tt := range []struct {
		k    cacheKey
		want bool
	}{{k0, true}, {k1, false}, {k2, true}, {k3, true}} {
		if _, _, ok := c.get(tt.k, now); ok != tt.want {
			t.Errorf("%s cached = %v, want %v", tt.k.name, ok, tt.want)
		}
	}
	// 300 s TTL + 1 min stale window later, k2, k0 and k3 are past their
	// use: one insert drops them (the bound needs none), keeping itself.
	later := now.Add(300*time.Second + time.Minute + time.Second)
	k4, m4 := answerFor(4)
	c.put(k4, m4, later)
	if n := c.len(); n != 1 {
		t.Errorf("after an insert past every stale window the cache holds %d entries, want 1", n)
	}
	if _, _, ok := c.get(k4, later); !ok {
		t.Error("the entry just inserted is missing")
	}
}

// A cached answer is packed: a handful of heap objects the garbage
// collector does not walk, not a dns.Msg tree. (With dns.Msg entries the
// count was 10 per answer, and at 100,000 entries those trees made the GC
// mark phases long enough to hold the CPU for 10–20 ms at a time on one
// core.)
func TestCachedAnswerObjects(t *testing.T) {
	const n = 20000
	keys := make([]cacheKey, n)
	for i := range n {
		keys[i], _ = answerFor(i)
	}
	c := newAnswerCache(n, time.Hour)
	now := time.Unix(1000, 0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		_, m := answerFor(i) // as an upstream answer: dropped by the caller after put
		c.put(keys[i], m, now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keys)
	perEntry := float64(after.HeapObjects-before.HeapObjects) / n
	t.Logf("%.1f heap objects per cached answer", perEntry)
	if perEntry > 3 {
		t.Errorf("%.1f heap objects per cached answer, want ≤ 3 (the node and the packed bytes, plus the map)", perEntry)
	}
	// And it reads back as the answer stored.
	_, want := answerFor(7)
	m, _, ok := c.get(keys[7], now)
	if !ok || len(m.Answer) != 1 || m.Answer[0].String() != want.Answer[0].String() {
		t.Errorf("get = %v, %v; want %v", m, ok, want.Answer)
	}
}
