package policy

import (
	"net/netip"
	"testing"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// validConfig is DESIGN §3's example policy plus a DNAT collection.
func validConfig() Config {
	return Config{
		Location: "eastus",
		RuleCollectionGroups: []RuleCollectionGroup{{
			Name:     "aks",
			Priority: 100,
			RuleCollections: []RuleCollection{
				{Name: "aksfwnr", Type: TypeNetwork, Priority: 100, Action: ActionAllow, Rules: []Rule{
					{Name: "time", Protocols: []string{"UDP"}, SourceAddresses: []string{"*"}, DestinationFqdns: []string{"ntp.ubuntu.com"}, DestinationPorts: []string{"123"}},
				}},
				{Name: "aksfwar", Type: TypeApplication, Priority: 200, Action: ActionAllow, Rules: []Rule{
					{Name: "fqdn", SourceAddresses: []string{"*"}, Protocols: []string{"http:80", "https:443"}, FqdnTags: []string{"AzureKubernetesService"}, TargetFqdns: []string{"*.hcp.eastus.azmk8s.io"}},
				}},
				{Name: "inbound", Type: TypeDNAT, Priority: 300, Action: ActionAllow, Rules: []Rule{
					{Name: "ssh", Protocols: []string{"TCP"}, SourceAddresses: []string{"203.0.113.0/24"}, DestinationAddresses: []string{"198.51.100.1"}, DestinationPorts: []string{"2222"}, TranslatedAddress: "10.0.0.4", TranslatedPort: "22"},
				}},
			},
		}},
	}
}

func mustCompile(t testing.TB, cfg Config) *Policy {
	t.Helper()
	p, err := Compile(cfg)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func name(t testing.TB, s string) dnsname.Name {
	t.Helper()
	n, err := dnsname.Parse(s)
	if err != nil {
		t.Fatalf("dnsname.Parse(%q): %v", s, err)
	}
	return n
}

func names(t testing.TB, ss ...string) []dnsname.Name {
	t.Helper()
	var out []dnsname.Name
	for _, s := range ss {
		out = append(out, name(t, s))
	}
	return out
}

var (
	addr     = netip.MustParseAddr
	addrPort = netip.MustParseAddrPort
)

// group is shorthand for a one-group config.
func group(prio int, colls ...RuleCollection) RuleCollectionGroup {
	return RuleCollectionGroup{Name: "g" + itoa(prio), Priority: prio, RuleCollections: colls}
}

func coll(name string, typ CollectionType, prio int, action Action, rules ...Rule) RuleCollection {
	return RuleCollection{Name: name, Type: typ, Priority: prio, Action: action, Rules: rules}
}

func netRule(name, proto, src, dst, port string) Rule {
	r := Rule{Name: name, Protocols: []string{proto}, SourceAddresses: []string{src}, DestinationPorts: []string{port}}
	if _, err := netip.ParsePrefix(dst); err == nil || dst == "*" {
		r.DestinationAddresses = []string{dst}
	} else if _, err := netip.ParseAddr(dst); err == nil {
		r.DestinationAddresses = []string{dst}
	} else {
		r.DestinationFqdns = []string{dst}
	}
	return r
}

func appRule(name, src string, protos []string, targets ...string) Rule {
	return Rule{Name: name, Protocols: protos, SourceAddresses: []string{src}, TargetFqdns: targets}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
