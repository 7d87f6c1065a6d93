package policy

import (
	"fmt"
	"testing"
)

// benchConfig builds 1,000 rules: 10 groups of 5 collections of 20 rules;
// collections alternate network (TCP/UDP, CIDRs, port ranges, one FQDN per
// rule) and application (three targets, one a wildcard).
func benchConfig() Config {
	var c Config
	n := 0
	for g := 0; g < 10; g++ {
		grp := RuleCollectionGroup{Name: fmt.Sprintf("g%d", g), Priority: 100 + g}
		for k := 0; k < 5; k++ {
			typ, action := TypeNetwork, ActionAllow
			if k%2 == 1 {
				typ = TypeApplication
			}
			if k == 4 {
				action = ActionDeny
			}
			coll := RuleCollection{Name: fmt.Sprintf("c%d", k), Type: typ, Priority: 100 + k, Action: action}
			for r := 0; r < 20; r++ {
				n++
				rule := Rule{Name: fmt.Sprintf("r%d", r), SourceAddresses: []string{fmt.Sprintf("10.%d.0.0/16", n%250), "192.168.0.0/16"}}
				if typ == TypeNetwork {
					rule.Protocols = []string{"TCP", "UDP"}
					rule.DestinationAddresses = []string{fmt.Sprintf("198.18.%d.0/24", n%250)}
					rule.DestinationFqdns = []string{fmt.Sprintf("svc%d.internal.example", n)}
					rule.DestinationPorts = []string{"443", fmt.Sprintf("%d-%d", 10000+n, 10010+n)}
				} else {
					rule.Protocols = []string{"https:443", "http:80"}
					rule.TargetFqdns = []string{fmt.Sprintf("api%d.example.com", n), fmt.Sprintf("*.cdn%d.example.net", n), fmt.Sprintf("www%d.example.org", n)}
				}
				coll.Rules = append(coll.Rules, rule)
			}
			grp.RuleCollections = append(grp.RuleCollections, coll)
		}
		c.RuleCollectionGroups = append(c.RuleCollectionGroups, grp)
	}
	return c
}

func BenchmarkDecide1000Rules(b *testing.B) {
	p := mustCompile(b, benchConfig())
	if got := len(p.network) + len(p.app) + len(p.dnat); got != 1000 {
		b.Fatalf("compiled %d rules, want 1000", got)
	}
	cases := []struct {
		name string
		flow Flow
		want Verdict
	}{
		// Worst case: every rule is tried and none matches.
		{"no_match", tcp("172.16.0.1", "203.0.113.9:443", AppHTTPS, "nothing.example"), VerdictDeny},
		// The last application rule of the last group matches.
		{"last_app_rule", tcp("192.168.1.1", "203.0.113.9:443", AppHTTPS, "x.cdn980.example.net"), VerdictAllow},
		// A network rule in the first collection matches.
		{"first_network_rule", tcp("10.1.2.3", "198.18.1.7:443", AppNone, ""), VerdictAllow},
		// A network rule found through a resolved name, mid-way.
		{"fqdn_network", Flow{Src: addr("192.168.1.1"), Dst: addrPort("203.0.113.9:10500"), Proto: ProtoUDP, DstNames: names(b, "svc500.internal.example")}, VerdictDeny},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if got := p.Decide(c.flow); got.Verdict != c.want {
				b.Fatalf("Decide = %+v, want verdict %s", got, c.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				p.Decide(c.flow)
			}
		})
	}
}

func BenchmarkAllowsName1000Rules(b *testing.B) {
	p := mustCompile(b, benchConfig())
	n := name(b, "nothing.example")
	b.ReportAllocs()
	for b.Loop() {
		p.AllowsName(addr("192.168.1.1"), n)
	}
}
