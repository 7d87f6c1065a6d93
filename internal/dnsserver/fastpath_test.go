package dnsserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/testkit/dnstest"
)

func packQuery(t testing.TB, name string, qtype uint16, edns uint16, mod func(*dns.Msg)) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0x1234
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	if mod != nil {
		mod(m)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return b
}

func TestFastKeyShapes(t *testing.T) {
	src := mustAddr("10.0.0.1")
	base := packQuery(t, "www.allowed.test.", dns.TypeA, 0, nil)
	tests := []struct {
		name string
		pkt  []byte
		ok   bool
	}{
		{"plain query", base, true},
		{"EDNS0 without options", packQuery(t, "www.allowed.test.", dns.TypeA, 1232, nil), true},
		{"EDNS0 with DO", packQuery(t, "www.allowed.test.", dns.TypeA, 1232, func(m *dns.Msg) { m.IsEdns0().SetDo() }), true},
		{"EDNS0 cookie option", packQuery(t, "www.allowed.test.", dns.TypeA, 1232, func(m *dns.Msg) {
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		}), false},
		{"response", packQuery(t, "www.allowed.test.", dns.TypeA, 0, func(m *dns.Msg) { m.Response = true }), false},
		{"opcode update", packQuery(t, "www.allowed.test.", dns.TypeA, 0, func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), false},
		{"two questions", packQuery(t, "www.allowed.test.", dns.TypeA, 0, func(m *dns.Msg) {
			m.Question = append(m.Question, m.Question[0])
		}), false},
		{"answer section", packQuery(t, "www.allowed.test.", dns.TypeA, 0, func(m *dns.Msg) {
			rr, _ := dns.NewRR("www.allowed.test. 60 IN A 1.2.3.4")
			m.Answer = []dns.RR{rr}
		}), false},
		{"non-OPT additional", packQuery(t, "www.allowed.test.", dns.TypeA, 0, func(m *dns.Msg) {
			rr, _ := dns.NewRR("www.allowed.test. 60 IN A 1.2.3.4")
			m.Extra = []dns.RR{rr}
		}), false},
		{"trailing byte", append(bytes.Clone(base), 0), false},
		{"cut question", base[:len(base)-1], false},
		{"header only", base[:12], false},
		{"compression pointer", []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := fastKey(nil, src, tt.pkt); ok != tt.ok {
				t.Errorf("fastKey(%s) ok = %v, want %v", tt.name, ok, tt.ok)
			}
		})
	}
}

func TestFastKeyDistinguishes(t *testing.T) {
	key := func(src string, pkt []byte) string {
		k, ok := fastKey(nil, mustAddr(src), pkt)
		if !ok {
			t.Fatalf("fastKey(%x) not ok", pkt)
		}
		return string(k)
	}
	a := key("10.0.0.1", packQuery(t, "www.allowed.test.", dns.TypeA, 0, nil))
	same := []struct {
		name string
		key  string
	}{
		{"another ID", key("10.0.0.1", packQuery(t, "www.allowed.test.", dns.TypeA, 0, func(m *dns.Msg) { m.Id = 7 }))},
		{"AD bit (ignored)", key("10.0.0.1", packQuery(t, "www.allowed.test.", dns.TypeA, 0, func(m *dns.Msg) { m.AuthenticatedData = true }))},
		{"v4-mapped source", key("::ffff:10.0.0.1", packQuery(t, "www.allowed.test.", dns.TypeA, 0, nil))},
	}
	for _, tt := range same {
		if tt.key != a {
			t.Errorf("fastKey with %s differs, want the same key", tt.name)
		}
	}
	differ := []struct {
		name string
		key  string
	}{
		{"another client", key("10.0.0.2", packQuery(t, "www.allowed.test.", dns.TypeA, 0, nil))},
		{"another type", key("10.0.0.1", packQuery(t, "www.allowed.test.", dns.TypeAAAA, 0, nil))},
		{"another spelling", key("10.0.0.1", packQuery(t, "WWW.allowed.test.", dns.TypeA, 0, nil))},
		{"RD clear", key("10.0.0.1", packQuery(t, "www.allowed.test.", dns.TypeA, 0, func(m *dns.Msg) { m.RecursionDesired = false }))},
		{"CD set", key("10.0.0.1", packQuery(t, "www.allowed.test.", dns.TypeA, 0, func(m *dns.Msg) { m.CheckingDisabled = true }))},
		{"EDNS0", key("10.0.0.1", packQuery(t, "www.allowed.test.", dns.TypeA, 1232, nil))},
	}
	seen := map[string]string{a: "base"}
	for _, tt := range differ {
		if prev, dup := seen[tt.key]; dup {
			t.Errorf("fastKey with %s = the key of %s, want a distinct key", tt.name, prev)
		}
		seen[tt.key] = tt.name
	}
	e4 := key("10.0.0.1", packQuery(t, "www.allowed.test.", dns.TypeA, 4096, nil))
	if e4 == key("10.0.0.1", packQuery(t, "www.allowed.test.", dns.TypeA, 1232, nil)) {
		t.Errorf("fastKey with EDNS0 sizes 4096 and 1232 is the same, want distinct (truncation differs)")
	}
}

func TestTTLSlots(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("cdn.allowed.test.", dns.TypeA)
	for _, s := range []string{"cdn.allowed.test. 300 IN CNAME edge.allowed.test.", "edge.allowed.test. 60 IN A 1.2.3.8"} {
		rr, _ := dns.NewRR(s)
		m.Answer = append(m.Answer, rr)
	}
	soa, _ := dns.NewRR("test. 600 IN SOA ns.test. h.test. 1 3600 600 86400 120")
	m.Ns = []dns.RR{soa}
	m.SetEdns0(1232, true)
	for _, compress := range []bool{false, true} {
		m.Compress = compress
		pkt, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		slots, ok := ttlSlots(pkt, 5)
		if !ok {
			t.Fatalf("ttlSlots(compress=%v) not ok", compress)
		}
		var got []uint32
		for _, s := range slots {
			got = append(got, s.base)
		}
		if diff := cmp.Diff([]uint32{305, 65, 605}, got); diff != "" { // the OPT record has no TTL
			t.Errorf("ttlSlots(compress=%v) bases (-want +got):\n%s", compress, diff)
		}
		if _, ok := ttlSlots(pkt[:len(pkt)-1], 0); ok {
			t.Errorf("ttlSlots of a cut message ok, want not ok")
		}
	}
}

// askRaw sends pkt over UDP from local (nil: any) and returns the answer.
func askRaw(t *testing.T, addr string, local *net.UDPAddr, pkt []byte) []byte {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", local, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return buf[:n]
}

func unpack(t *testing.T, b []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("unpack answer: %v", err)
	}
	return m
}

// TestFastPathReplay checks that a replayed answer is the one the full path
// gives at the same time (TCP never takes the fast path), with the query's
// ID, TTLs counted down, counted and logged as a cache hit.
func TestFastPathReplay(t *testing.T) {
	up := dnstest.NewZone(t, baseZone())
	e := start(t, defaults(up.Addr), Deps{})
	for _, tt := range []struct {
		name  string
		qtype uint16
		edns  uint16
	}{
		{"cdn.allowed.test.", dns.TypeA, 0},
		{"www.allowed.test.", dns.TypeA, 1232},
		{"nx.allowed.test.", dns.TypeA, 0},           // negative, SOA min 120
		{"www.allowed.test.", dns.TypeAAAA, 0},       // stripped: NODATA, nothing cached
		{"acr.allowed.test.", dns.TypeA, 0},          // chain into a private zone
		{"acr.privatelink.test.", dns.TypeA, 0},      // private zone
		{"evil.allowed.test.", dns.TypeA, 0},         // chain into a denied name
		{"www.allowed.test.", dns.TypeANY, 0},        // qtype denied
		{"Www.Allowed.Test.", dns.TypeA, 512},        // spelling echoed
		{"use-application-dns.net.", dns.TypeA, 0},   // canary
		{"nx.privatelink.test.", dns.TypeAAAA, 4096}, // NXDOMAIN in a private zone
	} {
		t.Run(fmt.Sprintf("%s/%s/%d", tt.name, dns.Type(tt.qtype), tt.edns), func(t *testing.T) {
			for i := range 4 {
				id := uint16(100 + i)
				q := packQuery(t, tt.name, tt.qtype, tt.edns, func(m *dns.Msg) { m.Id = id })
				got := unpack(t, askRaw(t, e.addr, nil, q))
				if got.Id != id {
					t.Fatalf("query %d: answer ID %d, want %d", i, got.Id, id)
				}
				full := e.srv.handle(t.Context(), mustAddr("127.0.0.1"), true, unpack(t, q))
				full.Id = id
				if got.String() != full.String() {
					t.Errorf("query %d over UDP:\n%s\nwant (full path):\n%s", i, got, full)
				}
				e.clock.Add(7 * time.Second) // TTLs count down between queries
			}
		})
	}
	// cdn's entry (60 s) expired as the clock moved on; the inserts after
	// that dropped it from the table's old end.
	if n := e.srv.fast.len(); n != 3 {
		t.Errorf("fast path entries = %d, want 3 (www/1232, nx, Www/512)", n)
	}
	var hits int
	for _, r := range e.logs.Records(t) {
		if r["qname"] == "cdn.allowed.test" && r["cache"] == "hit" && r["verdict"] == "allow" {
			hits++
		}
	}
	if hits != 3+4 { // UDP: a miss, a hit, two replays; direct: four hits
		t.Errorf("decision records for cdn.allowed.test hits = %d, want 7 (replays logged with logAllowed: all)", hits)
	}
}

// TestFastPathTTLAndExpiry: the TTL counts down second by second, and once
// the cache entry expires the forwarder is asked again.
func TestFastPathTTLAndExpiry(t *testing.T) {
	up := dnstest.NewZone(t, baseZone())
	e := start(t, defaults(up.Addr), Deps{})
	q := packQuery(t, "www.allowed.test.", dns.TypeA, 0, nil)
	ttl := func() uint32 {
		m := unpack(t, askRaw(t, e.addr, nil, q))
		if len(m.Answer) != 1 {
			t.Fatalf("answer %v, want one A", m.Answer)
		}
		return m.Answer[0].Header().Ttl
	}
	ttl()
	ttl() // a cache hit: stored for replay
	for _, step := range []struct {
		add  time.Duration
		want uint32
	}{{0, 300}, {999 * time.Millisecond, 300}, {time.Millisecond, 299}, {100 * time.Second, 199}, {198 * time.Second, 1}} {
		e.clock.Add(step.add)
		if got := ttl(); got != step.want {
			t.Errorf("TTL after +%v = %d, want %d", step.add, got, step.want)
		}
	}
	if n := up.Queries.Load(); n != 1 {
		t.Errorf("upstream queries = %d, want 1", n)
	}
	e.clock.Add(time.Second) // 300 s after storing: expired
	if got := ttl(); got != 300 {
		t.Errorf("TTL after expiry = %d, want 300 (asked again)", got)
	}
	if n := up.Queries.Load(); n != 2 {
		t.Errorf("upstream queries after expiry = %d, want 2", n)
	}
	if h, m := testutil.ToFloat64(e.srv.metrics.CacheHits), testutil.ToFloat64(e.srv.metrics.CacheMisses); h != 6 || m != 2 {
		t.Errorf("cache hits, misses = %v, %v; want 6, 2 (replays count as hits)", h, m)
	}
	q2 := `airlock_dnsserver_queries_total{reason="rule_allow",verdict="allow"}`
	if n := testutil.ToFloat64(e.srv.metrics.Queries.WithLabelValues("allow", "rule_allow")); n != 8 {
		t.Errorf("%s = %v, want 8 (replays counted)", q2, n)
	}
}

// TestFastPathObservations: a replayed answer records its addresses again
// before it is sent (here after the store had dropped them for room).
func TestFastPathObservations(t *testing.T) {
	up := dnstest.NewZone(t, baseZone())
	cfg := defaults(up.Addr)
	cfg.ObservationEntries = 1
	e := start(t, cfg, Deps{})
	obs := e.srv.Observations()
	t0 := e.clock.Now()
	www := packQuery(t, "www.allowed.test.", dns.TypeA, 0, nil)
	askRaw(t, e.addr, nil, www)
	askRaw(t, e.addr, nil, www) // stored for replay; 1.2.3.4 until t0+300s+grace
	if e.srv.fast.len() != 1 {
		t.Fatalf("fast path entries = %d, want 1", e.srv.fast.len())
	}
	e.clock.Add(500 * time.Millisecond)
	// ntp.test's pair (until t0+300.5s+grace) takes the only place.
	askRaw(t, e.addr, nil, packQuery(t, "ntp.test.", dns.TypeA, 0, nil))
	if got := obs.NamesFor(mustAddr("1.2.3.4"), e.clock.Now()); len(got) != 0 {
		t.Fatalf("NamesFor(1.2.3.4) = %v before the replay, want none (dropped for room)", got)
	}
	e.clock.Add(100 * time.Millisecond)
	askRaw(t, e.addr, nil, www) // replayed: until t0+301s+grace, which wins the place back
	if got := fmt.Sprint(obs.NamesFor(mustAddr("1.2.3.4"), e.clock.Now())); got != "[www.allowed.test]" {
		t.Errorf("NamesFor(1.2.3.4) after the replay = %s, want [www.allowed.test]", got)
	}
	end := t0.Add(301*time.Second + cfg.ObservationGrace)
	if got := obs.NamesFor(mustAddr("1.2.3.4"), end.Add(-time.Millisecond)); len(got) != 1 {
		t.Errorf("NamesFor(1.2.3.4) just before TTL+1s+grace = %v, want [www.allowed.test]", got)
	}
	if got := obs.NamesFor(mustAddr("1.2.3.4"), end); len(got) != 0 {
		t.Errorf("NamesFor(1.2.3.4) at TTL+1s+grace = %v, want none", got)
	}
}

// TestFastPathPolicy: answers are kept per client, and SetPolicy drops them.
func TestFastPathPolicy(t *testing.T) {
	zone := baseZone()
	zone["src.test./A"] = []string{"src.test. 300 IN A 1.2.3.20"}
	up := dnstest.NewZone(t, zone)
	p, err := policy.Compile(policy.Config{RuleCollectionGroups: []policy.RuleCollectionGroup{{
		Name: "g", Priority: 100,
		RuleCollections: []policy.RuleCollection{
			{Name: "app", Type: policy.TypeApplication, Priority: 200, Action: policy.ActionAllow, Rules: []policy.Rule{
				{Name: "one", Protocols: []string{"https:443"}, SourceAddresses: []string{"127.0.0.1"}, TargetFqdns: []string{"src.test"}},
			}},
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, defaults(up.Addr), Deps{Policy: p})
	q := packQuery(t, "src.test.", dns.TypeA, 0, nil)
	one := &net.UDPAddr{IP: net.ParseIP("127.0.0.1")}
	two := &net.UDPAddr{IP: net.ParseIP("127.0.0.2")}
	for range 3 {
		if r := unpack(t, askRaw(t, e.addr, one, q)); r.Rcode != dns.RcodeSuccess {
			t.Fatalf("src.test from 127.0.0.1: rcode %s, want NOERROR", dns.RcodeToString[r.Rcode])
		}
	}
	if r := unpack(t, askRaw(t, e.addr, two, q)); r.Rcode != dns.RcodeNameError {
		t.Errorf("src.test from 127.0.0.2 after 127.0.0.1's replays: rcode %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	e.srv.SetPolicy(testPolicy(t)) // src.test no longer allowed for anyone
	if n := e.srv.fast.len(); n != 0 {
		t.Errorf("fast path entries after SetPolicy = %d, want 0", n)
	}
	if r := unpack(t, askRaw(t, e.addr, one, q)); r.Rcode != dns.RcodeNameError {
		t.Errorf("src.test from 127.0.0.1 after SetPolicy: rcode %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	// An entry stored under the old policy is never replayed, even if it
	// lands after the swap (a query decided before SetPolicy, stored after).
	e.srv.SetPolicy(p)
	for range 2 {
		askRaw(t, e.addr, one, q)
	}
	e.srv.fast.mu.Lock()
	saved := map[string]*fastEntry{}
	for k, n := range e.srv.fast.m.m {
		saved[k] = n.v
	}
	e.srv.fast.mu.Unlock()
	if len(saved) != 1 {
		t.Fatalf("fast path entries = %d, want 1", len(saved))
	}
	e.srv.SetPolicy(nil)
	e.srv.fast.mu.Lock()
	for k, v := range saved {
		e.srv.fast.m.put(k, v, nil)
	}
	e.srv.fast.mu.Unlock()
	if r := unpack(t, askRaw(t, e.addr, one, q)); r.Rcode != dns.RcodeNameError {
		t.Errorf("src.test after SetPolicy(nil) with an old entry present: rcode %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
}

func mustKey(t *testing.T, src *net.UDPAddr, pkt []byte) []byte {
	t.Helper()
	a, _ := netip.AddrFromSlice(src.IP)
	k, ok := fastKey(nil, a, pkt)
	if !ok {
		t.Fatal("fastKey not ok")
	}
	return k
}

// TestReplayAllocs: a replayed answer allocates nothing.
func TestReplayAllocs(t *testing.T) {
	up := dnstest.NewZone(t, baseZone())
	cfg := defaults(up.Addr)
	cfg.LogAllowed = LogNone
	e := start(t, cfg, Deps{})
	q := packQuery(t, "cdn.allowed.test.", dns.TypeA, 0, nil)
	askRaw(t, e.addr, nil, q)
	askRaw(t, e.addr, nil, q)
	src := mustAddr("127.0.0.1")
	key, _ := fastKey(nil, src, q)
	out := make([]byte, 0, 4096)
	if e.srv.replay(out, key, src, q) == nil {
		t.Fatal("replay = nil, want the stored answer")
	}
	allocs := testing.AllocsPerRun(100, func() {
		key, _ = fastKey(key[:0], src, q)
		e.srv.replay(out, key, src, q)
	})
	if allocs != 0 {
		t.Errorf("fastKey+replay allocations = %v, want 0", allocs)
	}
}

// FuzzFastKey: the fast path's parser of untrusted datagrams never panics,
// and accepts only what miekg/dns decodes as one question (the full path
// would see the same query).
func FuzzFastKey(f *testing.F) {
	f.Add(packQuery(f, "www.allowed.test.", dns.TypeA, 0, nil))
	f.Add(packQuery(f, "www.allowed.test.", dns.TypeAAAA, 1232, nil))
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1})
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		k, ok := fastKey(nil, mustAddr("10.0.0.1"), pkt)
		ttlSlots(pkt, 1)
		if !ok {
			return
		}
		m := new(dns.Msg)
		if err := m.Unpack(pkt); err != nil {
			t.Fatalf("fastKey accepted %x, which miekg/dns rejects: %v", pkt, err)
		}
		if len(m.Question) != 1 || m.Response || m.Opcode != dns.OpcodeQuery || len(m.Answer)+len(m.Ns) != 0 {
			t.Fatalf("fastKey accepted %x: %v", pkt, m)
		}
		if len(k) < 16+5 {
			t.Fatalf("fastKey(%x) = %x, too short", pkt, k)
		}
	})
}

// TestWildcardListen: on a wildcard address, answers (replayed or not)
// leave from the address the query was sent to, or a connected client
// would not take them.
func TestWildcardListen(t *testing.T) {
	up := dnstest.NewZone(t, baseZone())
	for _, listen := range []string{"0.0.0.0:0", "[::]:0"} {
		t.Run(listen, func(t *testing.T) {
			cfg := defaults(up.Addr)
			cfg.Listen = listen
			srv, err := New(cfg, Deps{Policy: testPolicy(t)})
			if err != nil {
				t.Fatal(err)
			}
			pc, ln, err := listenBoth(listen)
			if err != nil {
				t.Skipf("listen %s: %v", listen, err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx, pc, ln) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Serve: %v", err)
				}
			}()
			_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
			targets := []string{"127.0.0.1"}
			if listen == "[::]:0" {
				targets = append(targets, "::1")
			}
			for _, host := range targets {
				q := packQuery(t, "www.allowed.test.", dns.TypeA, 0, nil)
				for i := range 3 { // miss, hit, replay
					if r := unpack(t, askRaw(t, net.JoinHostPort(host, port), nil, q)); len(r.Answer) != 1 {
						t.Errorf("query %d to %s: answer %v, want one A", i, host, r.Answer)
					}
				}
			}
			if srv.fast.len() == 0 {
				t.Errorf("fast path entries = 0, want some")
			}
		})
	}
}
