package learn

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/airlockdev/airlock/internal/policy"
)

var groups = []SourceGroup{
	{Name: "nodes", Ranges: []string{"10.224.0.0/16"}},
	{Name: "pods", Ranges: []string{"10.244.0.0/16"}},
}

// rules returns "collection/rule: targets|tags|dsts ports protocols sources" for each rule.
func rules(p *Proposal) []string {
	var out []string
	for _, c := range p.Collections {
		for _, r := range c.Rules {
			rr := r.Rule
			what := strings.Join(append(append(slices.Clone(rr.TargetFqdns), rr.FqdnTags...), rr.DestinationAddresses...), ",")
			if len(rr.DestinationPorts) > 0 {
				what += " ports " + strings.Join(rr.DestinationPorts, ",")
			}
			out = append(out, fmt.Sprintf("%s/%s: %s %s from %s", c.Name, rr.Name, what, strings.Join(rr.Protocols, ","), strings.Join(rr.SourceAddresses, ",")))
		}
	}
	return out
}

func deny(t *testing.T, i int, src, name string) []byte {
	return gwLine(t, i, src+":40000", "20.0.0.1:443", 443, name, "tcp", "https", "deny", "no_match")
}

func TestCollapse(t *testing.T) {
	tests := []struct {
		name      string
		threshold int
		names     []string
		want      []string
	}{
		{
			name:  "three siblings collapse to their common parent",
			names: []string{"a.cdn.example.com", "b.cdn.example.com", "c.cdn.example.com"},
			want:  []string{"pods-application/wildcard.cdn.example.com: *.cdn.example.com https:443 from 10.244.0.0/16"},
		},
		{
			name:  "two siblings stay names",
			names: []string{"a.example.com", "b.example.com"},
			want: []string{
				"pods-application/a.example.com: a.example.com https:443 from 10.244.0.0/16",
				"pods-application/b.example.com: b.example.com https:443 from 10.244.0.0/16",
			},
		},
		{
			name:  "the registrable domain itself is not a sibling and stays",
			names: []string{"example.com", "a.example.com", "b.x.example.com", "c.example.com"},
			want: []string{
				"pods-application/wildcard.example.com: *.example.com https:443 from 10.244.0.0/16",
				"pods-application/example.com: example.com https:443 from 10.244.0.0/16",
			},
		},
		{
			name: "never under a public suffix (blob.core.windows.net is one)",
			names: []string{"acct1.blob.core.windows.net", "acct2.blob.core.windows.net", "acct3.blob.core.windows.net",
				"x.co.uk", "y.co.uk", "z.co.uk"},
			want: []string{
				"pods-application/acct1.blob.core.windows.net: acct1.blob.core.windows.net https:443 from 10.244.0.0/16",
				"pods-application/acct2.blob.core.windows.net: acct2.blob.core.windows.net https:443 from 10.244.0.0/16",
				"pods-application/acct3.blob.core.windows.net: acct3.blob.core.windows.net https:443 from 10.244.0.0/16",
				"pods-application/x.co.uk: x.co.uk https:443 from 10.244.0.0/16",
				"pods-application/y.co.uk: y.co.uk https:443 from 10.244.0.0/16",
				"pods-application/z.co.uk: z.co.uk https:443 from 10.244.0.0/16",
			},
		},
		{
			name:      "threshold 1 is taken as 2: one name never becomes a wildcard",
			threshold: 1,
			names:     []string{"a.example.org"},
			want:      []string{"pods-application/a.example.org: a.example.org https:443 from 10.244.0.0/16"},
		},
		{
			name:      "threshold 4 keeps three names",
			threshold: 4,
			names:     []string{"a.example.org", "b.example.org", "c.example.org"},
			want: []string{
				"pods-application/a.example.org: a.example.org https:443 from 10.244.0.0/16",
				"pods-application/b.example.org: b.example.org https:443 from 10.244.0.0/16",
				"pods-application/c.example.org: c.example.org https:443 from 10.244.0.0/16",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lines [][]byte
			for i, n := range tt.names {
				lines = append(lines, deny(t, i, "10.244.0.5", n))
			}
			p := learnLines(t, Options{Sources: groups, Threshold: tt.threshold}, lines...)
			if diff := cmp.Diff(tt.want, rules(p)); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTags(t *testing.T) {
	p := learnLines(t, Options{Sources: groups},
		deny(t, 1, "10.224.0.4", "mcr.microsoft.com"),
		deny(t, 2, "10.224.0.4", "eastus.data.mcr.microsoft.com"),
		deny(t, 3, "10.224.0.5", "management.azure.com"),
		// http:80 is not in the tag: the name stays a rule of its own.
		gwLine(t, 4, "10.224.0.5:1", "20.0.0.1:80", 80, "packages.microsoft.com", "tcp", "http", "deny", "no_match"),
		// one name of the tag from pods: just a name.
		deny(t, 5, "10.244.0.9", "login.microsoftonline.com"),
	)
	want := []string{
		"nodes-application/tag.AzureKubernetesService: AzureKubernetesService  from 10.224.0.0/16",
		"nodes-application/packages.microsoft.com: packages.microsoft.com http:80 from 10.224.0.0/16",
		"pods-application/login.microsoftonline.com: login.microsoftonline.com https:443 from 10.244.0.0/16",
	}
	if diff := cmp.Diff(want, rules(p)); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	notes := strings.Join(p.Collections[0].Rules[0].Notes, "\n")
	for _, w := range []string{"covers the 3 names seen", "never seen", "login.microsoftonline.com (https:443)", "needs policy.location", "*.hcp.<location>.azmk8s.io"} {
		if w == "needs policy.location" {
			w = "for want of policy.location"
		}
		if !strings.Contains(notes, w) {
			t.Errorf("tag notes = %q, want %q in them", notes, w)
		}
	}
	if strings.Contains(notes, "mcr.microsoft.com (https") && !strings.Contains(notes, "*.data.mcr") {
		t.Errorf("tag notes list a seen entry as never seen: %q", notes)
	}
}

func TestNetworkRulesAndSources(t *testing.T) {
	p := learnLines(t, Options{Sources: groups},
		gwLine(t, 1, "10.224.0.4:1000", "91.189.91.157:123", 123, "", "udp", "none", "deny", "no_match"),
		gwLine(t, 2, "10.224.0.5:1000", "91.189.91.157:123", 123, "", "udp", "none", "deny", "no_match"),
		gwLine(t, 3, "10.224.0.5:1000", "91.189.91.157:4123", 4123, "", "udp", "none", "deny", "no_match"),
		gwLine(t, 4, "10.244.0.5:1000", "203.0.113.9:22", 22, "", "tcp", "none", "deny", "no_match"),
		gwLine(t, 5, "10.244.0.5:1000", "198.51.100.1:0", 0, "", "icmp", "none", "deny", "no_match"),
		// TLS without SNI: a network rule to the address.
		gwLine(t, 6, "10.244.0.5:1000", "198.51.100.2:443", 443, "", "tcp", "https", "deny", "sni_missing"),
		// outside every range: own address; the same target from two such sources shares a rule.
		gwLine(t, 7, "172.16.0.1:1000", "203.0.113.9:22", 22, "", "tcp", "none", "deny", "no_match"),
		gwLine(t, 8, "172.16.0.2:1000", "203.0.113.9:22", 22, "", "tcp", "none", "deny", "no_match"),
		gwLine(t, 9, "[fd00::1]:1000", "[2001:db8::1]:443", 443, "v6.example.net", "tcp", "https", "deny", "no_match"),
	)
	want := []string{
		"nodes-network/ip-91.189.91.157-udp: 91.189.91.157/32 ports 123,4123 UDP from 10.224.0.0/16",
		"pods-network/ip-198.51.100.1-icmp: 198.51.100.1/32 ports * ICMP from 10.244.0.0/16",
		"pods-network/ip-198.51.100.2-tcp: 198.51.100.2/32 ports 443 TCP from 10.244.0.0/16",
		"pods-network/ip-203.0.113.9-tcp: 203.0.113.9/32 ports 22 TCP from 10.244.0.0/16",
		"sources-application/v6.example.net: v6.example.net https:443 from fd00::1/128",
		"sources-network/ip-203.0.113.9-tcp: 203.0.113.9/32 ports 22 TCP from 172.16.0.1/32,172.16.0.2/32",
	}
	if diff := cmp.Diff(want, rules(p)); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	ev := p.Collections[0].Rules[0].Evidence
	if ev.Hits != 3 || ev.Sources != 2 || ev.Bytes != 3300 || ev.First != t0.Add(1e9) || ev.Last != t0.Add(3e9) {
		t.Errorf("evidence = %+v, want 3 hits, 2 sources, 3300 bytes, first t0+1s, last t0+3s", ev)
	}
	var prios []int
	for _, c := range p.Collections {
		prios = append(prios, c.Priority)
	}
	if !slices.IsSorted(prios) || len(slices.Compact(slices.Clone(prios))) != len(prios) {
		t.Errorf("collection priorities %v, want increasing and unique", prios)
	}
}

func TestNoSourceGroups(t *testing.T) {
	p := learnLines(t, Options{},
		deny(t, 1, "10.0.0.1", "a.example.com"),
		deny(t, 2, "10.0.0.2", "a.example.com"),
		deny(t, 3, "10.0.0.2", "b.example.com"),
	)
	want := []string{
		"sources-application/a.example.com: a.example.com https:443 from 10.0.0.1/32,10.0.0.2/32",
		"sources-application/b.example.com: b.example.com https:443 from 10.0.0.2/32",
	}
	if diff := cmp.Diff(want, rules(p)); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if !strings.Contains(p.Collections[0].Notes[0], "no source groups configured") {
		t.Errorf("notes = %q", p.Collections[0].Notes)
	}
}

func TestWhatIsLearned(t *testing.T) {
	p := learnLines(t, Options{Sources: groups},
		// allowed: already allowed, nothing to learn
		gwLine(t, 1, "10.244.0.1:1", "20.0.0.1:443", 443, "allowed.example.com", "tcp", "https", "allow", "rule_allow"),
		// report mode: would_deny is learned
		gwLine(t, 2, "10.244.0.1:1", "20.0.0.1:443", 443, "report.example.com", "tcp", "https", "deny", "no_match", "mode", "report", "would_deny", true),
		// denies no allow rule fixes
		gwLine(t, 3, "10.244.0.1:1", "20.0.0.1:443", 443, "denied.example.com", "tcp", "https", "deny", "rule_deny"),
		gwLine(t, 4, "10.244.0.1:1", "10.0.0.1:443", 443, "internal.example.com", "tcp", "https", "deny", "internal_address"),
		gwLine(t, 5, "10.244.0.1:1", "", 443, "", "tcp", "https", "deny", "no_match"),
		dnsLine(t, 6, "10.244.0.10", "1.0.0.10.in-addr.arpa", "PTR", "deny", "no_match"),
		// DNS: evidence for a gateway name of the group
		dnsLine(t, 7, "10.244.0.10", "report.example.com", "A", "deny", "no_match"),
		// DNS only: https:443 assumed
		dnsLine(t, 8, "10.244.0.10", "dnsonly.example.net", "AAAA", "deny", "no_match"),
		// DNS from nodes for a name pods reach over http:8080: the gateway's protocols
		gwLine(t, 9, "10.244.0.1:1", "20.0.0.1:8080", 8080, "api.example.org", "tcp", "http", "deny", "no_match"),
		dnsLine(t, 10, "10.224.0.10", "api.example.org", "A", "deny", "no_match"),
	)
	want := []string{
		"nodes-application/api.example.org: api.example.org http:8080 from 10.224.0.0/16",
		"pods-application/api.example.org: api.example.org http:8080 from 10.244.0.0/16",
		"pods-application/dnsonly.example.net: dnsonly.example.net https:443 from 10.244.0.0/16",
		"pods-application/report.example.com: report.example.com https:443 from 10.244.0.0/16",
	}
	if diff := cmp.Diff(want, rules(p)); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	st := p.Stats
	wantNL := map[string]int64{"rule_deny": 1, "internal_address": 1, "no name or address": 1, "dns qtype PTR": 1}
	if st.Records != 10 || st.Allowed != 1 || st.Denied != 9 || st.ReportMode != 1 || !cmp.Equal(st.NotLearnable, wantNL) {
		t.Errorf("stats = %+v, want 10 records, 1 allowed, 9 denied, 1 report, not learnable %v", st, wantNL)
	}
	rep := p.Collections[1].Rules[2]
	if rep.Evidence.Hits != 1 || rep.Evidence.DNSHits != 1 || !rep.Evidence.ReportMode {
		t.Errorf("report.example.com evidence = %+v, want 1 hit, 1 dns, report mode", rep.Evidence)
	}
	if n := strings.Join(p.Collections[1].Rules[1].Notes, " "); !strings.Contains(n, "seen in DNS only") {
		t.Errorf("dnsonly notes = %q, want 'seen in DNS only'", n)
	}
}

func TestKeyLimit(t *testing.T) {
	l := New(Options{Sources: groups, MaxKeys: 3})
	for i := range 10 {
		r, err := ParseRecord(deny(t, i, "10.244.0.1", fmt.Sprintf("n%d.example.com", i%5)))
		if err != nil {
			t.Fatal(err)
		}
		l.Add(r)
	}
	st := l.Stats()
	// n0..n2 kept (each seen twice); n3 and n4 dropped twice each.
	if st.Keys != 3 || st.Dropped != 4 {
		t.Errorf("stats = %+v, want 3 keys, 4 dropped", st)
	}
	var b strings.Builder
	if err := l.Proposal().WriteYAML(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "WARNING: the key limit (3) was reached: 4 denied records") {
		t.Errorf("YAML does not warn of the key limit:\n%s", b.String())
	}
}

func TestMerge(t *testing.T) {
	existing := policy.Config{RuleCollectionGroups: []policy.RuleCollectionGroup{
		{Name: "learned", Priority: 300, RuleCollections: []policy.RuleCollection{{
			Name: "web", Type: policy.TypeApplication, Priority: 100, Action: policy.ActionAllow,
			Rules: []policy.Rule{{Name: "a", Protocols: []string{"https:443"}, SourceAddresses: []string{"*"}, TargetFqdns: []string{"a.example.com"}}},
		}}},
		{Name: "base", Priority: 100},
	}}
	p := learnLines(t, Options{Sources: groups, Existing: existing},
		deny(t, 1, "10.244.0.1", "a.example.com"), // since allowed by existing
		deny(t, 2, "10.244.0.1", "b.example.com"),
		gwLine(t, 3, "10.244.0.1:1", "203.0.113.1:22", 22, "", "tcp", "none", "deny", "no_match"),
	)
	if p.Group != "learned-2" || p.Priority != 400 {
		t.Errorf("proposal group %s priority %d, want learned-2 400", p.Group, p.Priority)
	}
	merged := Merge(existing, p)
	if len(merged.RuleCollectionGroups) != 3 {
		t.Fatalf("merged groups = %d, want 3", len(merged.RuleCollectionGroups))
	}
	g := merged.RuleCollectionGroups[2]
	var names []string
	for _, c := range g.RuleCollections {
		for _, r := range c.Rules {
			names = append(names, c.Name+"/"+r.Name)
		}
	}
	if want := []string{"pods-application/b.example.com", "pods-network/ip-203.0.113.1-tcp"}; !slices.Equal(names, want) {
		t.Errorf("merged rules = %v, want %v (a.example.com is already allowed)", names, want)
	}
	pol, err := policy.Compile(merged)
	if err != nil {
		t.Fatalf("Compile(merged) = %v", err)
	}
	for _, f := range []policy.Flow{
		{Src: netip.MustParseAddr("10.244.3.3"), Dst: netip.MustParseAddrPort("1.1.1.1:443"), Proto: policy.ProtoTCP, App: policy.AppHTTPS, Name: mustName(t, "b.example.com")},
		{Src: netip.MustParseAddr("10.244.3.3"), Dst: netip.MustParseAddrPort("203.0.113.1:22"), Proto: policy.ProtoTCP},
	} {
		if d := pol.Decide(f); !d.Allowed() {
			t.Errorf("Decide(%+v) = %+v, want allow", f, d)
		}
	}
	never := policy.Flow{Src: netip.MustParseAddr("10.244.3.3"), Dst: netip.MustParseAddrPort("1.1.1.1:443"), Proto: policy.ProtoTCP, App: policy.AppHTTPS, Name: mustName(t, "c.example.com")}
	if d := pol.Decide(never); d.Allowed() {
		t.Errorf("Decide(never seen c.example.com) = %+v, want deny", d)
	}
	// A group of the same name and priority in existing: Merge picks others.
	again := Merge(merged, p)
	if g := again.RuleCollectionGroups[len(again.RuleCollectionGroups)-1]; len(again.RuleCollectionGroups) != 3 {
		t.Errorf("merging the same proposal twice added group %s: everything is already allowed", g.Name)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{Threshold: 1, Sources: []SourceGroup{
		{Name: "nodes", Ranges: []string{"10.224.0.0/16", "10.1.2.3", "10.0.0.1/8", "nope"}},
		{Name: "nodes"},
		{Name: "-bad"},
	}}
	var got []string
	c.Validate(func(path, msg string) { got = append(got, path) })
	want := []string{"threshold", "sources[0].ranges[2]", "sources[0].ranges[3]", "sources[1].name", "sources[1].ranges", "sources[2].name", "sources[2].ranges"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Validate paths (-want +got):\n%s", diff)
	}
	if _, err := ParseSources("nodes=10.224.0.0/16,10.225.0.0/16;pods=10.244.0.0/16"); err != nil {
		t.Errorf("ParseSources = %v", err)
	}
	for _, bad := range []string{"nodes", "nodes=", "nodes=10.0.0.1/8", "a=10.0.0.0/8;a=10.1.0.0/16"} {
		if _, err := ParseSources(bad); err == nil {
			t.Errorf("ParseSources(%q) = nil error", bad)
		}
	}
}

func TestRuleName(t *testing.T) {
	long := strings.Repeat("abcdefghi.", 25) + "example.com"
	for _, tt := range []struct{ in, want string }{
		{"a.example.com", "a.example.com"},
		{"_dmarc.example.com", "r_dmarc.example.com"},
		{"ip-fd00::1-tcp", "ip-fd00--1-tcp"},
		{"tag.AzureKubernetesService", "tag.AzureKubernetesService"},
	} {
		if got := ruleName(tt.in); got != tt.want {
			t.Errorf("ruleName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if a, b := ruleName(long), ruleName(long+"x"); len(a) != 80 || a == b {
		t.Errorf("ruleName(long) = %q (%d), %q: want 80 characters, distinct", a, len(a), b)
	}
}

func TestTrimKeepsTheMostHitRules(t *testing.T) {
	var lines [][]byte
	// n0.example.org gets 1 hit, n1 2 hits, …: names in distinct domains so
	// nothing collapses.
	for i := range 5 {
		for j := 0; j <= i; j++ {
			lines = append(lines, deny(t, j, "10.244.0.5", fmt.Sprintf("n%d.example%d.org", i, i)))
		}
	}
	p := learnLines(t, Options{Sources: groups}, lines...)
	colls, left := trim(p.Collections, 2*estimate(&p.Collections[0].Rules[0])+10)
	if left != 3 || len(colls) != 1 || len(colls[0].Rules) != 2 {
		t.Fatalf("trim left %d out, kept %v; want 3 left out, 2 kept", left, rules(&Proposal{Collections: colls}))
	}
	if got := []string{colls[0].Rules[0].Rule.Name, colls[0].Rules[1].Rule.Name}; !slices.Equal(got, []string{"n3.example3.org", "n4.example4.org"}) {
		t.Errorf("trim kept %v, want the two most hit in their order", got)
	}
}
