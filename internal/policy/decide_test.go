package policy

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/google/go-cmp/cmp"
)

// orderConfig exercises processing order. Group "b" (priority 100) is
// processed before group "a" (priority 200) whatever their collections'
// priorities.
func orderConfig() Config {
	return Config{RuleCollectionGroups: []RuleCollectionGroup{
		{Name: "a", Priority: 200, RuleCollections: []RuleCollection{
			coll("a-net-deny", TypeNetwork, 100, ActionDeny,
				netRule("deny-10", "TCP", "*", "192.0.2.10", "443"),
				netRule("deny-198-18", "TCP", "*", "198.18.0.10", "443")),
			coll("a-app-deny", TypeApplication, 110, ActionDeny,
				appRule("bad", "*", []string{"https:443"}, "*.bad.example")),
			coll("a-dnat", TypeDNAT, 300, ActionAllow,
				Rule{Name: "ssh", Protocols: []string{"TCP"}, SourceAddresses: []string{"203.0.113.0/24"}, DestinationAddresses: []string{"198.51.100.1"}, DestinationPorts: []string{"2222"}, TranslatedAddress: "10.0.0.4", TranslatedPort: "22"}),
		}},
		{Name: "b", Priority: 100, RuleCollections: []RuleCollection{
			coll("b-app-allow", TypeApplication, 500, ActionAllow,
				appRule("web", "*", []string{"https:443", "http:80"}, "*.example.com", "example.com"),
				appRule("internal", "10.0.0.0/8", []string{"https:443"}, "internal.example")),
			coll("b-app-deny", TypeApplication, 400, ActionDeny,
				appRule("blocked", "*", []string{"https:443"}, "blocked.example.com")),
			coll("b-net-allow", TypeNetwork, 200, ActionAllow,
				Rule{Name: "web", Protocols: []string{"TCP"}, SourceAddresses: []string{"*"}, DestinationAddresses: []string{"192.0.2.0/24"}, DestinationPorts: []string{"443", "8000-8100"}},
				netRule("ntp", "UDP", "*", "ntp.ubuntu.com", "123"),
				netRule("ping", "ICMP", "*", "192.0.2.0/24", "1"),
				netRule("v6", "Any", "2001:db8::/32", "2001:db8:1::/48", "*")),
			coll("b-net-deny", TypeNetwork, 150, ActionDeny,
				netRule("deny-66", "TCP", "10.0.0.0/8", "192.0.2.66", "443"),
				netRule("deny-dnat-target", "TCP", "*", "198.51.100.1", "2222")),
		}},
	}}
}

func allow(typ CollectionType, group, coll, rule string) Decision {
	return Decision{Verdict: VerdictAllow, Reason: ReasonRuleAllow, Type: typ, Group: group, Collection: coll, Rule: rule}
}

func deny(typ CollectionType, group, coll, rule string) Decision {
	return Decision{Verdict: VerdictDeny, Reason: ReasonRuleDeny, Type: typ, Group: group, Collection: coll, Rule: rule}
}

func tcp(src, dst string, app App, n string) Flow {
	f := Flow{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddrPort(dst), Proto: ProtoTCP, App: app}
	if n != "" {
		f.Name, _ = dnsname.Parse(n)
	}
	return f
}

func TestDecide(t *testing.T) {
	p := mustCompile(t, orderConfig())
	ntpIP := "91.189.91.157:123"
	tests := []struct {
		name string
		flow Flow
		want Decision
	}{
		// DNAT before network: the network deny for 198.51.100.1:2222 is
		// never reached from an allowed DNAT source.
		{"dnat before network", tcp("203.0.113.5", "198.51.100.1:2222", AppNone, ""), allow(TypeDNAT, "a", "a-dnat", "ssh")},
		{"dnat source not allowed falls to network", tcp("10.9.9.9", "198.51.100.1:2222", AppNone, ""), deny(TypeNetwork, "b", "b-net-deny", "deny-dnat-target")},
		// Collection priority within a group: b-net-deny (150) before b-net-allow (200).
		{"collection priority deny first", tcp("10.0.0.5", "192.0.2.66:443", AppHTTPS, "ok.example.com"), deny(TypeNetwork, "b", "b-net-deny", "deny-66")},
		{"deny rule missed, allow next", tcp("172.16.0.1", "192.0.2.66:443", AppHTTPS, "ok.example.com"), allow(TypeNetwork, "b", "b-net-allow", "web")},
		// Group priority beats collection priority: a-net-deny has collection
		// priority 100 but group a (200) comes after group b (100).
		{"group priority before collection priority", tcp("10.0.0.5", "192.0.2.10:443", AppNone, ""), allow(TypeNetwork, "b", "b-net-allow", "web")},
		{"lower group still decides what it alone matches", tcp("10.0.0.5", "198.18.0.10:443", AppNone, ""), deny(TypeNetwork, "a", "a-net-deny", "deny-198-18")},
		// Network before application: an application deny never sees a flow a network rule allowed.
		{"network before application", tcp("10.0.0.5", "192.0.2.77:443", AppHTTPS, "blocked.example.com"), allow(TypeNetwork, "b", "b-net-allow", "web")},
		// Ports and ranges.
		{"port range low edge", tcp("10.0.0.5", "192.0.2.5:8000", AppNone, ""), allow(TypeNetwork, "b", "b-net-allow", "web")},
		{"port range inside", tcp("10.0.0.5", "192.0.2.5:8050", AppNone, ""), allow(TypeNetwork, "b", "b-net-allow", "web")},
		{"port range high edge", tcp("10.0.0.5", "192.0.2.5:8100", AppNone, ""), allow(TypeNetwork, "b", "b-net-allow", "web")},
		{"port outside range", tcp("10.0.0.5", "192.0.2.5:8101", AppNone, ""), Deny(ReasonNoMatch)},
		// Application rules, first match, deny collections.
		{"application allow wildcard", tcp("10.1.1.1", "203.0.113.50:443", AppHTTPS, "x.example.com"), allow(TypeApplication, "b", "b-app-allow", "web")},
		{"application allow deep wildcard", tcp("10.1.1.1", "203.0.113.50:443", AppHTTPS, "a.b.example.com"), allow(TypeApplication, "b", "b-app-allow", "web")},
		{"application allow apex", tcp("10.1.1.1", "203.0.113.50:443", AppHTTPS, "example.com"), allow(TypeApplication, "b", "b-app-allow", "web")},
		{"application http", tcp("10.1.1.1", "203.0.113.50:80", AppHTTP, "x.example.com"), allow(TypeApplication, "b", "b-app-allow", "web")},
		{"application http on 443 is not http:80", tcp("10.1.1.1", "203.0.113.50:443", AppHTTP, "x.example.com"), Deny(ReasonNoMatch)},
		{"application https on 8443", tcp("10.1.1.1", "203.0.113.50:8443", AppHTTPS, "x.example.com"), Deny(ReasonNoMatch)},
		{"application deny collection first", tcp("10.1.1.1", "203.0.113.50:443", AppHTTPS, "blocked.example.com"), deny(TypeApplication, "b", "b-app-deny", "blocked")},
		{"application deny in lower group", tcp("10.1.1.1", "203.0.113.50:443", AppHTTPS, "x.bad.example"), deny(TypeApplication, "a", "a-app-deny", "bad")},
		{"application wildcard excludes apex", tcp("10.1.1.1", "203.0.113.50:443", AppHTTPS, "bad.example"), Deny(ReasonNoMatch)},
		{"application source", tcp("10.1.1.1", "203.0.113.50:443", AppHTTPS, "internal.example"), allow(TypeApplication, "b", "b-app-allow", "internal")},
		{"application source not allowed", tcp("192.168.1.1", "203.0.113.50:443", AppHTTPS, "internal.example"), Deny(ReasonNoMatch)},
		{"no match", tcp("10.1.1.1", "203.0.113.50:443", AppHTTPS, "other.test"), Deny(ReasonNoMatch)},
		{"no sni", tcp("10.1.1.1", "203.0.113.50:443", AppHTTPS, ""), Deny(ReasonSNIMissing)},
		{"no host", tcp("10.1.1.1", "203.0.113.50:80", AppHTTP, ""), Deny(ReasonHostMissing)},
		{"no app", tcp("10.1.1.1", "203.0.113.50:443", AppNone, "x.example.com"), Deny(ReasonNoMatch)},
		{"no sni but network rule allows", tcp("10.1.1.1", "192.0.2.5:443", AppHTTPS, ""), allow(TypeNetwork, "b", "b-net-allow", "web")},
		{"quic is not an application flow", Flow{Src: addr("10.1.1.1"), Dst: addrPort("203.0.113.50:443"), Proto: ProtoUDP, App: AppHTTPS, Name: name(t, "x.example.com")}, Deny(ReasonNoMatch)},
		// FQDN network rules match through the names DNS resolved for Dst.
		{"fqdn network rule", Flow{Src: addr("10.1.1.1"), Dst: addrPort(ntpIP), Proto: ProtoUDP, DstNames: names(t, "other.example", "ntp.ubuntu.com")}, allow(TypeNetwork, "b", "b-net-allow", "ntp")},
		{"fqdn network rule without resolution", Flow{Src: addr("10.1.1.1"), Dst: addrPort(ntpIP), Proto: ProtoUDP}, Deny(ReasonNoMatch)},
		{"fqdn network rule other name", Flow{Src: addr("10.1.1.1"), Dst: addrPort(ntpIP), Proto: ProtoUDP, DstNames: names(t, "pool.ntp.org")}, Deny(ReasonNoMatch)},
		{"fqdn network rule wrong protocol", Flow{Src: addr("10.1.1.1"), Dst: addrPort(ntpIP), Proto: ProtoTCP, DstNames: names(t, "ntp.ubuntu.com")}, Deny(ReasonNoMatch)},
		{"fqdn network rule wrong port", Flow{Src: addr("10.1.1.1"), Dst: addrPort("91.189.91.157:124"), Proto: ProtoUDP, DstNames: names(t, "ntp.ubuntu.com")}, Deny(ReasonNoMatch)},
		{"fqdn network rule ignores the sni", Flow{Src: addr("10.1.1.1"), Dst: addrPort(ntpIP), Proto: ProtoUDP, Name: name(t, "ntp.ubuntu.com")}, Deny(ReasonNoMatch)},
		// ICMP ignores ports; Any covers every protocol; IPv6.
		{"icmp ignores ports", Flow{Src: addr("10.1.1.1"), Dst: netip.AddrPortFrom(addr("192.0.2.9"), 0), Proto: ProtoICMP}, allow(TypeNetwork, "b", "b-net-allow", "ping")},
		{"any protocol v6", Flow{Src: addr("2001:db8::5"), Dst: addrPort("[2001:db8:1::9]:5353"), Proto: ProtoUDP}, allow(TypeNetwork, "b", "b-net-allow", "v6")},
		{"v6 source outside", Flow{Src: addr("2001:db9::5"), Dst: addrPort("[2001:db8:1::9]:5353"), Proto: ProtoUDP}, Deny(ReasonNoMatch)},
		{"mapped source is ipv4", tcp("::ffff:10.0.0.5", "192.0.2.66:443", AppNone, ""), deny(TypeNetwork, "b", "b-net-deny", "deny-66")},
		{"mapped destination is ipv4", tcp("10.0.0.5", "[::ffff:192.0.2.66]:443", AppNone, ""), deny(TypeNetwork, "b", "b-net-deny", "deny-66")},
		{"zero proto matches nothing", Flow{Src: addr("10.1.1.1"), Dst: addrPort("192.0.2.5:443")}, Deny(ReasonNoMatch)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.Decide(tt.flow)
			if got != tt.want {
				t.Fatalf("Decide(%+v) = %+v, want %+v", tt.flow, got, tt.want)
			}
			// The explained decision is the same decision, and its last step
			// is the deciding rule.
			e := p.DecideExplain(tt.flow)
			if e.Decision != got {
				t.Fatalf("DecideExplain(%+v).Decision = %+v, want %+v", tt.flow, e.Decision, got)
			}
			if got.Rule != "" {
				last := e.Steps[len(e.Steps)-1]
				if !last.Matched || last.Rule != got.Rule || last.Collection != got.Collection || last.Group != got.Group {
					t.Fatalf("DecideExplain(%+v) last step = %+v, want the deciding rule %+v", tt.flow, last, got)
				}
			}
			for _, s := range e.Steps[:max(len(e.Steps)-1, 0)] {
				if s.Matched {
					t.Fatalf("DecideExplain(%+v): step %+v matched before the end", tt.flow, s)
				}
			}
		})
	}
}

func TestDecideEmptyPolicy(t *testing.T) {
	p := mustCompile(t, Config{})
	f := tcp("10.0.0.1", "192.0.2.1:443", AppHTTPS, "example.com")
	if got := p.Decide(f); got != Deny(ReasonNoMatch) {
		t.Fatalf("Decide on an empty policy = %+v, want deny no_match", got)
	}
}

// TestDecideStepOrder checks that rules are tried in processing order:
// DNAT, network, application; by group priority, collection priority, rule
// order.
func TestDecideStepOrder(t *testing.T) {
	p := mustCompile(t, orderConfig())
	e := p.DecideExplain(tcp("10.1.1.1", "203.0.113.50:443", AppHTTPS, "other.test"))
	var got []string
	for _, s := range e.Steps {
		got = append(got, string(s.Type)+" "+s.Group+"/"+s.Collection+"/"+s.Rule)
	}
	want := []string{
		"dnat a/a-dnat/ssh",
		"network b/b-net-deny/deny-66",
		"network b/b-net-deny/deny-dnat-target",
		"network b/b-net-allow/web",
		"network b/b-net-allow/ntp",
		"network b/b-net-allow/ping",
		"network b/b-net-allow/v6",
		"network a/a-net-deny/deny-10",
		"network a/a-net-deny/deny-198-18",
		"application b/b-app-deny/blocked",
		"application b/b-app-allow/web",
		"application b/b-app-allow/internal",
		"application a/a-app-deny/bad",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("rules tried (-want +got):\n%s", diff)
	}
}

func TestAllowsName(t *testing.T) {
	p := mustCompile(t, orderConfig())
	tests := []struct {
		name string
		src  string
		host string
		want Decision
	}{
		{"network fqdn", "10.1.1.1", "ntp.ubuntu.com", allow(TypeNetwork, "b", "b-net-allow", "ntp")},
		{"application wildcard", "10.1.1.1", "x.example.com", allow(TypeApplication, "b", "b-app-allow", "web")},
		{"application apex", "10.1.1.1", "example.com", allow(TypeApplication, "b", "b-app-allow", "web")},
		{"deny collection counts", "10.1.1.1", "blocked.example.com", deny(TypeApplication, "b", "b-app-deny", "blocked")},
		{"deny in lower group", "10.1.1.1", "x.bad.example", deny(TypeApplication, "a", "a-app-deny", "bad")},
		{"source allowed", "10.1.1.1", "internal.example", allow(TypeApplication, "b", "b-app-allow", "internal")},
		{"source not allowed", "192.168.1.1", "internal.example", Deny(ReasonNoMatch)},
		{"mapped source", "::ffff:10.1.1.1", "internal.example", allow(TypeApplication, "b", "b-app-allow", "internal")},
		{"unknown name", "10.1.1.1", "exfil.example", Deny(ReasonNoMatch)},
		{"zero name", "10.1.1.1", "", Deny(ReasonNoMatch)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n dnsname.Name
			if tt.host != "" {
				n = name(t, tt.host)
			}
			got := p.AllowsName(addr(tt.src), n)
			if got != tt.want {
				t.Fatalf("AllowsName(%s, %q) = %+v, want %+v", tt.src, tt.host, got, tt.want)
			}
			if e := p.AllowsNameExplain(addr(tt.src), n); e.Decision != got || !e.NameOnly {
				t.Fatalf("AllowsNameExplain(%s, %q).Decision = %+v, want %+v", tt.src, tt.host, e.Decision, got)
			}
		})
	}
}

// TestAllowsNameNetworkDenyFirst: a network deny rule naming a host wins
// over a later application allow, as in Decide's order.
func TestAllowsNameNetworkDenyFirst(t *testing.T) {
	p := mustCompile(t, Config{RuleCollectionGroups: []RuleCollectionGroup{group(100,
		coll("app", TypeApplication, 100, ActionAllow, appRule("all", "*", []string{"https:443"}, "*")),
		coll("net", TypeNetwork, 200, ActionDeny, netRule("no-ntp", "UDP", "*", "ntp.ubuntu.com", "123"), netRule("no-ip", "TCP", "*", "0.0.0.0/0", "*")),
	)}})
	if got, want := p.AllowsName(addr("10.0.0.1"), name(t, "ntp.ubuntu.com")), deny(TypeNetwork, "g100", "net", "no-ntp"); got != want {
		t.Fatalf("AllowsName(ntp.ubuntu.com) = %+v, want %+v", got, want)
	}
	// A network rule with addresses only never matches a name.
	if got, want := p.AllowsName(addr("10.0.0.1"), name(t, "a.example")), allow(TypeApplication, "g100", "app", "all"); got != want {
		t.Fatalf("AllowsName(a.example) = %+v, want %+v", got, want)
	}
}

func TestDNAT(t *testing.T) {
	p := mustCompile(t, validConfig())
	listen := addrPort("198.51.100.1:2222")
	tests := []struct {
		name     string
		listen   netip.AddrPort
		proto    Proto
		src      string
		wantAddr netip.AddrPort
		want     Decision
	}{
		{"allowed source", listen, ProtoTCP, "203.0.113.7", addrPort("10.0.0.4:22"), allow(TypeDNAT, "aks", "inbound", "ssh")},
		{"mapped addresses", addrPort("[::ffff:198.51.100.1]:2222"), ProtoTCP, "::ffff:203.0.113.7", addrPort("10.0.0.4:22"), allow(TypeDNAT, "aks", "inbound", "ssh")},
		{"other source", listen, ProtoTCP, "192.0.2.1", netip.AddrPort{}, Deny(ReasonNoMatch)},
		{"other protocol", listen, ProtoUDP, "203.0.113.7", netip.AddrPort{}, Deny(ReasonNoMatch)},
		{"other port", addrPort("198.51.100.1:22"), ProtoTCP, "203.0.113.7", netip.AddrPort{}, Deny(ReasonNoMatch)},
		{"other address", addrPort("198.51.100.2:2222"), ProtoTCP, "203.0.113.7", netip.AddrPort{}, Deny(ReasonNoMatch)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotAddr, got := p.DNAT(tt.listen, tt.proto, addr(tt.src))
			if gotAddr != tt.wantAddr || got != tt.want {
				t.Fatalf("DNAT(%s, %s, %s) = %s, %+v, want %s, %+v", tt.listen, tt.proto, tt.src, gotAddr, got, tt.wantAddr, tt.want)
			}
		})
	}
}

func TestDNATFirstMatch(t *testing.T) {
	dn := func(name, src, to string) Rule {
		return Rule{Name: name, Protocols: []string{"TCP", "UDP"}, SourceAddresses: []string{src}, DestinationAddresses: []string{"198.51.100.1"}, DestinationPorts: []string{"443"}, TranslatedAddress: to, TranslatedPort: "8443"}
	}
	p := mustCompile(t, Config{RuleCollectionGroups: []RuleCollectionGroup{
		group(200, coll("late", TypeDNAT, 100, ActionAllow, dn("all", "*", "10.0.0.9"))),
		group(100, coll("early", TypeDNAT, 100, ActionAllow, dn("office", "203.0.113.0/24", "10.0.0.1"), dn("lab", "198.18.0.0/15", "10.0.0.2"))),
	}})
	for _, tt := range []struct{ src, want string }{
		{"203.0.113.9", "10.0.0.1:8443"},
		{"198.19.1.1", "10.0.0.2:8443"},
		{"192.0.2.1", "10.0.0.9:8443"},
	} {
		got, _ := p.DNAT(addrPort("198.51.100.1:443"), ProtoUDP, addr(tt.src))
		if got.String() != tt.want {
			t.Errorf("DNAT(198.51.100.1:443, udp, %s) = %s, want %s", tt.src, got, tt.want)
		}
	}
	want := []DNATListener{{ProtoTCP, addrPort("198.51.100.1:443")}, {ProtoUDP, addrPort("198.51.100.1:443")}}
	if diff := cmp.Diff(want, p.DNATListeners(), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Fatalf("DNATListeners() (-want +got):\n%s", diff)
	}
}

func TestNetworkPorts(t *testing.T) {
	p := mustCompile(t, Config{RuleCollectionGroups: []RuleCollectionGroup{group(100,
		coll("allow", TypeNetwork, 100, ActionAllow,
			Rule{Name: "a", Protocols: []string{"TCP"}, SourceAddresses: []string{"*"}, DestinationAddresses: []string{"*"}, DestinationPorts: []string{"443", "8000-8100", "8050-8200", "8201"}},
			netRule("ntp", "UDP", "*", "ntp.ubuntu.com", "123"),
			netRule("any", "Any", "*", "192.0.2.0/24", "53"),
			netRule("icmp", "ICMP", "*", "192.0.2.0/24", "7")),
		coll("deny", TypeNetwork, 200, ActionDeny, netRule("d", "TCP", "*", "*", "22")),
	)}})
	want := []PortRange{{ProtoTCP, 53, 53}, {ProtoTCP, 443, 443}, {ProtoTCP, 8000, 8201}, {ProtoUDP, 53, 53}, {ProtoUDP, 123, 123}}
	if diff := cmp.Diff(want, p.NetworkPorts()); diff != "" {
		t.Fatalf("NetworkPorts() (-want +got):\n%s", diff)
	}
}

func TestProtoParsing(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Proto
		ok   bool
	}{{"tcp", ProtoTCP, true}, {"UDP", ProtoUDP, true}, {"Icmp", ProtoICMP, true}, {"sctp", 0, false}, {"", 0, false}} {
		got, err := ParseProto(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseProto(%q) = %v, %v, want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestReasonTable(t *testing.T) {
	seen := map[Reason]bool{}
	for _, r := range Reasons() {
		if seen[r.Reason] {
			t.Errorf("reason %q listed twice", r.Reason)
		}
		seen[r.Reason] = true
		if r.Meaning == "" || r.Reason.Meaning() != r.Meaning {
			t.Errorf("reason %q has meaning %q, Meaning() %q", r.Reason, r.Meaning, r.Reason.Meaning())
		}
		for _, c := range string(r.Reason) {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
				t.Errorf("reason %q is not snake_case", r.Reason)
			}
		}
	}
	for _, r := range []Reason{ReasonRuleAllow, ReasonRuleDeny, ReasonNoMatch, ReasonSNIMissing, ReasonHostMissing} {
		if !seen[r] {
			t.Errorf("reason %q, which Decide returns, is not in the table", r)
		}
	}
	if Reason("nope").Meaning() != "" {
		t.Errorf("Reason(nope).Meaning() = %q, want \"\"", Reason("nope").Meaning())
	}
}

// TestDocsListReasons keeps the reason table in docs/policy.md in step with
// Reasons().
func TestDocsListReasons(t *testing.T) {
	doc, err := os.ReadFile("../../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Reasons() {
		row := fmt.Sprintf("| `%s` | %s | %s |", r.Reason, r.Verdict, strings.ReplaceAll(r.Meaning, "gateway.allowedInternalRanges", "`gateway.allowedInternalRanges`"))
		row = strings.ReplaceAll(row, "gateway.allowIPv6", "`gateway.allowIPv6`")
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/policy.md lacks the row %q", row)
		}
	}
}
