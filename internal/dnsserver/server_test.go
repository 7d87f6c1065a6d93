package dnsserver

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/testkit/dnstest"
)

func baseZone() map[string][]string {
	return map[string][]string{
		"www.allowed.test./A":        {"www.allowed.test. 300 IN A 1.2.3.4"},
		"www.allowed.test./AAAA":     {"www.allowed.test. 300 IN AAAA 2600::1"},
		"www.allowed.test./TXT":      {`www.allowed.test. 300 IN TXT "secret"`},
		"denied.test./A":             {"denied.test. 300 IN A 1.2.3.5"},
		"deny.allowed.test./A":       {"deny.allowed.test. 300 IN A 1.2.3.6"},
		"evil.allowed.test./A":       {"evil.allowed.test. 300 IN CNAME x.denied.test.", "x.denied.test. 300 IN A 1.2.3.7"},
		"cdn.allowed.test./A":        {"cdn.allowed.test. 300 IN CNAME edge.allowed.test.", "edge.allowed.test. 60 IN A 1.2.3.8", "unrelated.test. 300 IN A 9.9.9.9"},
		"local.allowed.test./A":      {"local.allowed.test. 300 IN A 127.0.0.1"},
		"meta.allowed.test./A":       {"meta.allowed.test. 300 IN A 169.254.169.254"},
		"acr.allowed.test./A":        {"acr.allowed.test. 300 IN CNAME acr.privatelink.test.", "acr.privatelink.test. 300 IN A 1.2.3.9"},
		"any.allowed.test./ANY":      {"any.allowed.test. 300 IN A 1.2.3.10", `any.allowed.test. 300 IN HTTPS 1 . alpn="h2" ech="AAA="`},
		"ntp.test./A":                {"ntp.test. 300 IN A 1.2.3.11"},
		"extra.cluster.local./A":     {"extra.cluster.local. 300 IN A 1.2.3.12"},
		"use-application-dns.net./A": {"use-application-dns.net. 300 IN A 1.2.3.13"},
	}
}

func privateZones() []ZoneConfig {
	return []ZoneConfig{{Zone: "privatelink.test", Records: []RecordConfig{
		{Name: "acr", Type: "A", Value: "10.1.2.3"},
		{Name: "acr", Type: "TXT", Value: "hello"},
		{Name: "_https._tcp", Type: "SRV", Value: "10 5 443 acr.privatelink.test"},
		{Name: "alias", Type: "CNAME", Value: "acr.privatelink.test"},
		{Name: "v6", Type: "AAAA", Value: "fd00::1"},
	}}}
}

func TestAnswers(t *testing.T) {
	up := dnstest.NewZone(t, baseZone())
	cfg := defaults(up.Addr)
	cfg.AllowNames = []string{"*.cluster.local", "deny.allowed.test", "use-application-dns.net"}
	cfg.PrivateZones = privateZones()
	e := start(t, cfg, Deps{})

	tests := []struct {
		name     string
		qname    string
		qtype    uint16
		rcode    int
		aa       bool
		want     []string // answer types, or addresses when wantAddr
		wantAddr []string
		reason   string
		decided  string
	}{
		{name: "allowed A", qname: "www.allowed.test", qtype: dns.TypeA, rcode: dns.RcodeSuccess, wantAddr: []string{"1.2.3.4"}, reason: "rule_allow"},
		{name: "AAAA stripped", qname: "www.allowed.test", qtype: dns.TypeAAAA, rcode: dns.RcodeSuccess, reason: "rule_allow"},
		{name: "denied name", qname: "denied.test", qtype: dns.TypeA, rcode: dns.RcodeNameError, reason: "no_match"},
		{name: "deny rule beats allowNames", qname: "deny.allowed.test", qtype: dns.TypeA, rcode: dns.RcodeNameError, reason: "rule_deny"},
		{name: "allowNames", qname: "extra.cluster.local", qtype: dns.TypeA, rcode: dns.RcodeSuccess, wantAddr: []string{"1.2.3.12"}, reason: "allow_names"},
		{name: "network rule name", qname: "ntp.test", qtype: dns.TypeA, rcode: dns.RcodeSuccess, wantAddr: []string{"1.2.3.11"}, reason: "rule_allow"},
		{name: "TXT denied", qname: "www.allowed.test", qtype: dns.TypeTXT, rcode: dns.RcodeNameError, reason: "qtype_denied"},
		{name: "TXT of denied name", qname: "x.denied.test", qtype: dns.TypeTXT, rcode: dns.RcodeNameError, reason: "no_match"},
		{name: "HTTPS query empty", qname: "www.allowed.test", qtype: dns.TypeHTTPS, rcode: dns.RcodeSuccess, reason: "rule_allow"},
		{name: "CNAME into denied", qname: "evil.allowed.test", qtype: dns.TypeA, rcode: dns.RcodeNameError, reason: "no_match", decided: "x.denied.test"},
		{name: "CNAME chain allowed, unrelated dropped", qname: "cdn.allowed.test", qtype: dns.TypeA, rcode: dns.RcodeSuccess, want: []string{"CNAME", "A"}, wantAddr: []string{"1.2.3.8"}, reason: "rule_allow"},
		{name: "rebinding loopback", qname: "local.allowed.test", qtype: dns.TypeA, rcode: dns.RcodeNameError, reason: "rebinding", decided: "local.allowed.test"},
		{name: "rebinding metadata", qname: "meta.allowed.test", qtype: dns.TypeA, rcode: dns.RcodeNameError, reason: "rebinding", decided: "meta.allowed.test"},
		{name: "DoH canary", qname: "use-application-dns.net", qtype: dns.TypeA, rcode: dns.RcodeNameError, reason: "doh_canary"},
		{name: "invalid name", qname: "10.0.0.1", qtype: dns.TypeA, rcode: dns.RcodeNameError, reason: "name_invalid"},
		{name: "private zone A", qname: "acr.privatelink.test", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true, wantAddr: []string{"10.1.2.3"}, reason: "private_zone"},
		{name: "private zone TXT", qname: "ACR.privatelink.test", qtype: dns.TypeTXT, rcode: dns.RcodeSuccess, aa: true, want: []string{"TXT"}, reason: "private_zone"},
		{name: "private zone SRV", qname: "_https._tcp.privatelink.test", qtype: dns.TypeSRV, rcode: dns.RcodeSuccess, aa: true, want: []string{"SRV"}, reason: "private_zone"},
		{name: "private zone CNAME followed", qname: "alias.privatelink.test", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true, want: []string{"CNAME", "A"}, wantAddr: []string{"10.1.2.3"}, reason: "private_zone"},
		{name: "private zone NXDOMAIN", qname: "nope.privatelink.test", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, reason: "private_zone"},
		{name: "private zone empty non-terminal", qname: "_tcp.privatelink.test", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true, reason: "private_zone"},
		{name: "private zone SOA", qname: "privatelink.test", qtype: dns.TypeSOA, rcode: dns.RcodeSuccess, aa: true, want: []string{"SOA"}, reason: "private_zone"},
		{name: "private zone NS", qname: "privatelink.test", qtype: dns.TypeNS, rcode: dns.RcodeSuccess, aa: true, want: []string{"NS"}, reason: "private_zone"},
		{name: "private zone AAAA stripped", qname: "v6.privatelink.test", qtype: dns.TypeAAAA, rcode: dns.RcodeSuccess, aa: true, reason: "private_zone"},
		{name: "public CNAME into private zone", qname: "acr.allowed.test", qtype: dns.TypeA, rcode: dns.RcodeSuccess, want: []string{"CNAME", "A"}, wantAddr: []string{"10.1.2.3"}, reason: "rule_allow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.ask(t, tt.qname, tt.qtype, false, 1232)
			if r.Rcode != tt.rcode {
				t.Errorf("%s %s: rcode = %s, want %s", tt.qname, dns.Type(tt.qtype), dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
			if r.Authoritative != tt.aa {
				t.Errorf("%s: AA = %v, want %v", tt.qname, r.Authoritative, tt.aa)
			}
			if tt.want != nil {
				if diff := cmp.Diff(tt.want, types(r)); diff != "" {
					t.Errorf("%s answer types (-want +got):\n%s", tt.qname, diff)
				}
			}
			if diff := cmp.Diff(tt.wantAddr, addrs(r)); diff != "" {
				t.Errorf("%s addresses (-want +got):\n%s", tt.qname, diff)
			}
			if tt.want == nil && tt.wantAddr == nil && len(r.Answer) != 0 {
				t.Errorf("%s answer = %v, want none", tt.qname, r.Answer)
			}
			recs := e.logs.Records(t)
			last := recs[len(recs)-1]
			if last["reason"] != tt.reason {
				t.Errorf("%s record reason = %v, want %s (record %v)", tt.qname, last["reason"], tt.reason, last)
			}
			if tt.decided != "" && last["decided_name"] != tt.decided {
				t.Errorf("%s record decided_name = %v, want %s", tt.qname, last["decided_name"], tt.decided)
			}
		})
	}
}

func TestDeniedRecordAndRefused(t *testing.T) {
	up := dnstest.NewZone(t, baseZone())
	cfg := defaults(up.Addr)
	cfg.BlockedRcode = "REFUSED"
	cfg.LogAllowed = LogNone
	e := start(t, cfg, Deps{})
	if r := e.ask(t, "denied.test", dns.TypeA, false, 0); r.Rcode != dns.RcodeRefused {
		t.Errorf("denied.test rcode = %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	if r := e.ask(t, "www.allowed.test", dns.TypeA, false, 0); r.Rcode != dns.RcodeSuccess {
		t.Errorf("www.allowed.test rcode = %s, want NOERROR", dns.RcodeToString[r.Rcode])
	}
	recs := e.logs.Records(t)
	if len(recs) != 1 {
		t.Fatalf("records = %d (%v), want 1 (denied only, logAllowed none)", len(recs), recs)
	}
	want := map[string]any{"qname": "denied.test", "qtype": "A", "verdict": "deny", "reason": "no_match", "rcode": "REFUSED", "src": "127.0.0.1", "proto": "udp"}
	for k, v := range want {
		if recs[0][k] != v {
			t.Errorf("record[%s] = %v, want %v", k, recs[0][k], v)
		}
	}
	if up.Queries.Load() != 1 {
		t.Errorf("upstream queries = %d, want 1 (denied names are never forwarded)", up.Queries.Load())
	}
}

func TestAllowIPv6AndInternalRanges(t *testing.T) {
	up := dnstest.NewZone(t, baseZone())
	e := start(t, defaults(up.Addr), Deps{AllowIPv6: true, AllowedInternalRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if got := addrs(e.ask(t, "www.allowed.test", dns.TypeAAAA, false, 0)); !slices.Equal(got, []string{"2600::1"}) {
		t.Errorf("AAAA www.allowed.test with allowIPv6 = %v, want [2600::1]", got)
	}
	if got := addrs(e.ask(t, "local.allowed.test", dns.TypeA, false, 0)); !slices.Equal(got, []string{"127.0.0.1"}) {
		t.Errorf("A local.allowed.test with 127.0.0.0/8 allowed = %v, want [127.0.0.1]", got)
	}
	if r := e.ask(t, "meta.allowed.test", dns.TypeA, false, 0); r.Rcode != dns.RcodeNameError {
		t.Errorf("meta.allowed.test rcode = %s, want NXDOMAIN (169.254/16 not allowed)", dns.RcodeToString[r.Rcode])
	}
}

func TestHTTPSRecordsStripped(t *testing.T) {
	up := dnstest.NewZone(t, baseZone())
	cfg := defaults(up.Addr)
	cfg.AllowQueryTypes = append(cfg.AllowQueryTypes, "ANY")
	e := start(t, cfg, Deps{})
	r := e.ask(t, "any.allowed.test", dns.TypeANY, false, 1232)
	if diff := cmp.Diff([]string{"A"}, types(r)); diff != "" {
		t.Errorf("ANY any.allowed.test types (-want +got):\n%s", diff)
	}
	recs := e.logs.Records(t)
	if got := fmt.Sprint(recs[len(recs)-1]["stripped"]); got != "[HTTPS]" {
		t.Errorf("record stripped = %s, want [HTTPS]", got)
	}
}

func TestTruncationAndTCP(t *testing.T) {
	zone := baseZone()
	var big []string
	for i := range 60 {
		big = append(big, fmt.Sprintf("big.allowed.test. 300 IN A 1.2.%d.%d", i/200+3, i%200+1))
	}
	zone["big.allowed.test./A"] = big
	up := dnstest.NewZone(t, zone)
	e := start(t, defaults(up.Addr), Deps{})

	r := e.ask(t, "big.allowed.test", dns.TypeA, false, 0)
	if !r.Truncated || len(r.Answer) >= 60 {
		t.Errorf("UDP without EDNS0: TC = %v with %d answers, want TC with fewer than 60", r.Truncated, len(r.Answer))
	}
	r = e.ask(t, "big.allowed.test", dns.TypeA, false, 4096)
	if r.Truncated || len(r.Answer) != 60 {
		t.Errorf("UDP bufsize 4096: TC = %v with %d answers, want 60 untruncated", r.Truncated, len(r.Answer))
	}
	r = e.ask(t, "big.allowed.test", dns.TypeA, true, 0)
	if r.Truncated || len(r.Answer) != 60 {
		t.Errorf("TCP: TC = %v with %d answers, want 60 untruncated", r.Truncated, len(r.Answer))
	}
	// The real client path: miekg's client does not retry, kdig/dig do;
	// the e2e test covers dig's retry.
}

func TestUpstreamTruncatedRetriedOverTCP(t *testing.T) {
	zone := baseZone()
	var big []string
	for i := range 300 {
		big = append(big, fmt.Sprintf("huge.allowed.test. 300 IN A 1.2.%d.%d", i/200+3, i%200+1))
	}
	zone["huge.allowed.test./A"] = big // > 4096 bytes: the upstream truncates over UDP
	up := dnstest.NewZone(t, zone)
	e := start(t, defaults(up.Addr), Deps{})
	r := e.ask(t, "huge.allowed.test", dns.TypeA, true, 0)
	if len(r.Answer) != 300 {
		t.Errorf("TCP huge.allowed.test answers = %d, want 300 (forwarder retried over TCP)", len(r.Answer))
	}
}

func TestFailover(t *testing.T) {
	// A UDP socket that never answers: the first forwarder times out.
	dead, _, err := listenBoth("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	up := dnstest.NewZone(t, baseZone())
	cfg := defaults(dead.LocalAddr().String(), up.Addr)
	cfg.ForwarderTimeout = 200 * time.Millisecond
	e := start(t, cfg, Deps{})
	start := time.Now()
	if got := addrs(e.ask(t, "www.allowed.test", dns.TypeA, false, 0)); !slices.Equal(got, []string{"1.2.3.4"}) {
		t.Fatalf("A www.allowed.test with first forwarder dead = %v, want [1.2.3.4]", got)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("first answer took %v, want at least the 200ms timeout of the dead forwarder", d)
	}
	// The dead forwarder is now tried last: the next miss is fast.
	start = time.Now()
	if got := addrs(e.ask(t, "ntp.test", dns.TypeA, false, 0)); !slices.Equal(got, []string{"1.2.3.11"}) {
		t.Fatalf("A ntp.test = %v, want [1.2.3.11]", got)
	}
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Errorf("second miss took %v, want the dead forwarder skipped", d)
	}
}

func TestStaleThenServfail(t *testing.T) {
	up := dnstest.NewZone(t, map[string][]string{"www.allowed.test./A": {"www.allowed.test. 60 IN A 1.2.3.4"}})
	cfg := defaults(up.Addr)
	cfg.ForwarderTimeout = 200 * time.Millisecond
	cfg.StaleFor = 10 * time.Minute
	reg := prometheus.NewRegistry()
	e := start(t, cfg, Deps{Registerer: reg})

	if got := addrs(e.ask(t, "www.allowed.test", dns.TypeA, false, 0)); !slices.Equal(got, []string{"1.2.3.4"}) {
		t.Fatalf("first answer = %v, want [1.2.3.4]", got)
	}
	e.clock.Add(30 * time.Second)
	r := e.ask(t, "www.allowed.test", dns.TypeA, false, 0)
	if up.Queries.Load() != 1 || r.Answer[0].Header().Ttl != 30 {
		t.Errorf("cached answer: upstream queries = %d, TTL = %d; want 1 and 30", up.Queries.Load(), r.Answer[0].Header().Ttl)
	}
	up.Stop()
	e.clock.Add(5 * time.Minute) // expired, within staleFor
	r = e.ask(t, "www.allowed.test", dns.TypeA, false, 0)
	if got := addrs(r); r.Rcode != dns.RcodeSuccess || !slices.Equal(got, []string{"1.2.3.4"}) {
		t.Fatalf("all forwarders down, within staleFor: rcode %s answer %v, want the stale 1.2.3.4", dns.RcodeToString[r.Rcode], got)
	}
	if ttl := r.Answer[0].Header().Ttl; ttl > staleTTL {
		t.Errorf("stale TTL = %d, want ≤ %d", ttl, staleTTL)
	}
	if n := testutil.ToFloat64(e.srv.metrics.StaleAnswers); n != 1 {
		t.Errorf("stale answers metric = %v, want 1", n)
	}
	e.clock.Add(6 * time.Minute) // past TTL + staleFor
	if r := e.ask(t, "www.allowed.test", dns.TypeA, false, 0); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("past staleFor: rcode = %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if n, err := testutil.GatherAndCount(reg, "airlock_dnsserver_queries_total", "airlock_dnsserver_forwarder_duration_seconds"); err != nil || n < 2 {
		t.Errorf("GatherAndCount = %d, %v; want the query and forwarder series", n, err)
	}
}

func TestCache(t *testing.T) {
	up := dnstest.NewZone(t, baseZone())
	e := start(t, defaults(up.Addr), Deps{})
	for range 3 {
		e.ask(t, "www.allowed.test", dns.TypeA, false, 0)
		e.ask(t, "nx.allowed.test", dns.TypeA, false, 0) // NXDOMAIN with SOA min 120
	}
	if n := up.Queries.Load(); n != 2 {
		t.Errorf("upstream queries after 3× two names = %d, want 2 (positive and negative cached)", n)
	}
	e.clock.Add(121 * time.Second) // the negative entry expired; the positive (300 s) not
	e.ask(t, "www.allowed.test", dns.TypeA, false, 0)
	e.ask(t, "nx.allowed.test", dns.TypeA, false, 0)
	if n := up.Queries.Load(); n != 3 {
		t.Errorf("upstream queries after the negative TTL = %d, want 3", n)
	}
	if h, m := testutil.ToFloat64(e.srv.metrics.CacheHits), testutil.ToFloat64(e.srv.metrics.CacheMisses); h != 5 || m != 3 {
		t.Errorf("cache hits, misses = %v, %v; want 5, 3", h, m)
	}
}

func TestCacheTTLCaps(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want time.Duration
		ok   bool
	}{
		{"positive min", "a. 100 IN A 1.2.3.4|a. 50 IN A 1.2.3.5", 50 * time.Second, true},
		{"positive capped", "a. 86400 IN A 1.2.3.4", time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := new(dns.Msg)
			for _, s := range splitBar(tt.msg) {
				rr, _ := dns.NewRR(s)
				m.Answer = append(m.Answer, rr)
			}
			got, ok := cacheTTL(m)
			if got != tt.want || ok != tt.ok {
				t.Errorf("cacheTTL(%s) = %v, %v; want %v, %v", tt.msg, got, ok, tt.want, tt.ok)
			}
		})
	}
	neg := new(dns.Msg)
	neg.Rcode = dns.RcodeNameError
	soa, _ := dns.NewRR("test. 7200 IN SOA ns.test. h.test. 1 3600 600 86400 7200")
	neg.Ns = []dns.RR{soa}
	if got, ok := cacheTTL(neg); got != 30*time.Minute || !ok {
		t.Errorf("cacheTTL(NXDOMAIN, SOA min 7200) = %v, %v; want 30m, true", got, ok)
	}
	neg.Ns = nil
	if _, ok := cacheTTL(neg); ok {
		t.Errorf("cacheTTL(NXDOMAIN without SOA) cacheable, want not")
	}
	sf := new(dns.Msg)
	sf.Rcode = dns.RcodeServerFailure
	if _, ok := cacheTTL(sf); ok {
		t.Errorf("cacheTTL(SERVFAIL) cacheable, want not")
	}
}

func splitBar(s string) []string {
	var out []string
	for s != "" {
		i := 0
		for i < len(s) && s[i] != '|' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

func TestObservations(t *testing.T) {
	up := dnstest.NewZone(t, baseZone())
	cfg := defaults(up.Addr)
	cfg.ObservationGrace = time.Minute
	e := start(t, cfg, Deps{})
	obs := e.srv.Observations()

	// Recorded before the answer is written: handle returns the answer
	// ServeDNS writes, and the observation must already be there.
	req := new(dns.Msg)
	req.SetQuestion("cdn.allowed.test.", dns.TypeA)
	resp := e.srv.handle(t.Context(), mustAddr("10.0.0.7"), false, req)
	if len(resp.Answer) != 2 {
		t.Fatalf("handle cdn.allowed.test answer = %v, want CNAME + A", resp.Answer)
	}
	now := e.clock.Now()
	got := obs.NamesFor(mustAddr("1.2.3.8"), now)
	if diff := cmp.Diff("[cdn.allowed.test edge.allowed.test]", fmt.Sprint(got)); diff != "" {
		t.Errorf("NamesFor(1.2.3.8) right after the answer (-want +got):\n%s", diff)
	}
	if got := obs.NamesFor(mustAddr("9.9.9.9"), now); len(got) != 0 {
		t.Errorf("NamesFor(9.9.9.9) = %v, want none (unrelated record dropped)", got)
	}
	// Over the network too.
	e.ask(t, "www.allowed.test", dns.TypeA, false, 0)
	if got := fmt.Sprint(obs.NamesFor(mustAddr("1.2.3.4"), now)); got != "[www.allowed.test]" {
		t.Errorf("NamesFor(1.2.3.4) = %s, want [www.allowed.test]", got)
	}
	// Denied answers are not recorded.
	e.ask(t, "evil.allowed.test", dns.TypeA, false, 0)
	if got := obs.NamesFor(mustAddr("1.2.3.7"), now); len(got) != 0 {
		t.Errorf("NamesFor(1.2.3.7) = %v, want none (denied chain)", got)
	}
	// The A record's TTL is 60 s, the grace 1 min.
	e.clock.Add(119 * time.Second)
	if got := obs.NamesFor(mustAddr("1.2.3.8"), e.clock.Now()); len(got) != 2 {
		t.Errorf("NamesFor(1.2.3.8) at TTL+grace-1s = %v, want both names", got)
	}
	e.clock.Add(2 * time.Second)
	if got := obs.NamesFor(mustAddr("1.2.3.8"), e.clock.Now()); len(got) != 0 {
		t.Errorf("NamesFor(1.2.3.8) after TTL+grace = %v, want none", got)
	}
}

func TestObservationsBounded(t *testing.T) {
	o := NewObservations(3)
	now := time.Unix(1000, 0)
	n := func(s string) []dnsname.Name { return []dnsname.Name{nameOf(s)} }
	o.Record(mustAddr("1.1.1.1"), n("a.test"), now.Add(10*time.Second), now)
	o.Record(mustAddr("1.1.1.2"), n("b.test"), now.Add(30*time.Second), now)
	o.Record(mustAddr("1.1.1.3"), n("c.test"), now.Add(20*time.Second), now)
	o.Record(mustAddr("1.1.1.1"), n("a.test"), now.Add(40*time.Second), now) // extended
	o.Record(mustAddr("1.1.1.4"), n("d.test"), now.Add(50*time.Second), now) // evicts c (expires first)
	if o.Len() != 3 {
		t.Errorf("Len = %d, want 3", o.Len())
	}
	for addr, want := range map[string]int{"1.1.1.1": 1, "1.1.1.2": 1, "1.1.1.3": 0, "1.1.1.4": 1} {
		if got := len(o.NamesFor(mustAddr(addr), now)); got != want {
			t.Errorf("NamesFor(%s) = %d names, want %d", addr, got, want)
		}
	}
	// Expired pairs go on the next Record.
	later := now.Add(45 * time.Second)
	o.Record(mustAddr("1.1.1.5"), n("e.test"), later.Add(time.Second), later)
	if o.Len() != 2 {
		t.Errorf("Len after expiry = %d, want 2 (d and e)", o.Len())
	}
	for i := range 1000 { // heap stays bounded under refreshes
		o.Record(mustAddr("1.1.1.5"), n("e.test"), later.Add(time.Duration(i+2)*time.Second), later)
	}
	if len(o.expiry) > 2*3+16 {
		t.Errorf("heap len = %d, want bounded", len(o.expiry))
	}
}

func TestSetPolicy(t *testing.T) {
	up := dnstest.NewZone(t, baseZone())
	e := start(t, defaults(up.Addr), Deps{})
	if r := e.ask(t, "www.allowed.test", dns.TypeA, false, 0); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("before reload: rcode %s, want NOERROR", dns.RcodeToString[r.Rcode])
	}
	e.srv.SetPolicy(nil)
	if r := e.ask(t, "www.allowed.test", dns.TypeA, false, 0); r.Rcode != dns.RcodeNameError {
		t.Errorf("after SetPolicy(nil): rcode %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
}

func TestSampler(t *testing.T) {
	var s sampler
	now := time.Unix(0, 0)
	kept := 0
	for range 250 {
		if s.keep("a.test", now) {
			kept++
		}
	}
	if kept != 3 { // the 1st, 100th, 200th
		t.Errorf("kept %d of 250 in one minute, want 3", kept)
	}
	if !s.keep("a.test", now.Add(time.Minute)) {
		t.Errorf("first query of the next minute not kept")
	}
	if !s.keep("b.test", now) {
		t.Errorf("first query for another name not kept")
	}
}

func TestMalformed(t *testing.T) {
	up := dnstest.NewZone(t, baseZone())
	e := start(t, defaults(up.Addr), Deps{})
	two := new(dns.Msg)
	two.SetQuestion("www.allowed.test.", dns.TypeA)
	two.Question = append(two.Question, dns.Question{Name: "ntp.test.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	ch := new(dns.Msg)
	ch.SetQuestion("version.bind.", dns.TypeTXT)
	ch.Question[0].Qclass = dns.ClassCHAOS
	upd := new(dns.Msg)
	upd.SetUpdate("allowed.test.")
	tests := []struct {
		name  string
		m     *dns.Msg
		rcode int
	}{
		{"two questions", two, dns.RcodeFormatError},
		{"class CHAOS", ch, dns.RcodeRefused},
		{"update", upd, dns.RcodeNotImplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.srv.handle(t.Context(), mustAddr("127.0.0.1"), false, tt.m)
			if resp.Rcode != tt.rcode {
				t.Errorf("handle(%s) rcode = %s, want %s", tt.name, dns.RcodeToString[resp.Rcode], dns.RcodeToString[tt.rcode])
			}
		})
	}
	if up.Queries.Load() != 0 {
		t.Errorf("upstream queries = %d, want 0", up.Queries.Load())
	}
}

// A policy denial carries an Extended DNS Error naming airlock and the
// reason, so it can be told from an outside resolver's NXDOMAIN; allowed
// answers and answers without EDNS0 carry none.
func TestDeniedCarriesExtendedError(t *testing.T) {
	up := dnstest.NewZone(t, baseZone())
	e := start(t, defaults(up.Addr), Deps{})
	ede := func(m *dns.Msg) *dns.EDNS0_EDE {
		if opt := m.IsEdns0(); opt != nil {
			for _, o := range opt.Option {
				if x, ok := o.(*dns.EDNS0_EDE); ok {
					return x
				}
			}
		}
		return nil
	}
	for _, tc := range []struct {
		qname string
		qtype uint16
		want  string // "" for no EDE
	}{
		{"denied.test", dns.TypeA, "airlock: no_match"},
		{"www.allowed.test", dns.TypeTXT, "airlock: qtype_denied"},
		{"use-application-dns.net", dns.TypeA, "airlock: doh_canary"},
		{"www.allowed.test", dns.TypeA, ""},
	} {
		for _, tcp := range []bool{false, false, true} { // the second UDP ask may be a fast-path replay
			r := e.ask(t, tc.qname, tc.qtype, tcp, 1232)
			got := ede(r)
			switch {
			case tc.want == "" && got != nil:
				t.Errorf("%s %s (tcp %v): EDE %d %q, want none", tc.qname, dns.Type(tc.qtype), tcp, got.InfoCode, got.ExtraText)
			case tc.want != "" && (got == nil || got.InfoCode != dns.ExtendedErrorCodeBlocked || got.ExtraText != tc.want):
				t.Errorf("%s %s (tcp %v): EDE %v, want code 15 %q", tc.qname, dns.Type(tc.qtype), tcp, got, tc.want)
			}
		}
	}
	if r := e.ask(t, "denied.test", dns.TypeA, false, 0); r.IsEdns0() != nil {
		t.Errorf("denied.test without EDNS0 got an OPT record: %v", r)
	}
}
