package egress

import (
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/policy"
)

// observed is a NameSource standing in for airlock DNS's observations.
type observed struct {
	mu sync.Mutex
	m  map[netip.Addr][]dnsname.Name
}

func (o *observed) NamesFor(a netip.Addr, _ time.Time) []dnsname.Name {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m[a]
}

// An FQDN network rule matches exactly the addresses DNS answered for the
// name (Azure Firewall's DNS-proxy semantics): an IP-literal flow to an
// observed address passes, to any other address it does not.
func TestFQDNNetworkRuleUsesDNSObservations(t *testing.T) {
	up := echoServer(t, "127.0.0.1:0", "up")
	port := strconv.Itoa(int(up.Port()))
	ntp, err := dnsname.Parse("ntp.example")
	if err != nil {
		t.Fatal(err)
	}
	obs := &observed{m: map[netip.Addr][]dnsname.Name{}}
	pol := policy.Config{RuleCollectionGroups: []policy.RuleCollectionGroup{{Name: "g", Priority: 100, RuleCollections: []policy.RuleCollection{{
		Name: "net", Type: policy.TypeNetwork, Priority: 100, Action: policy.ActionAllow,
		Rules: []policy.Rule{{Name: "ntp", SourceAddresses: []string{"*"}, Protocols: []string{"TCP"}, DestinationFqdns: []string{ntp.String()}, DestinationPorts: []string{port}}},
	}}}}}
	g := startGateway(t, gwOptions{policy: pol, names: obs})

	if _, _, code, body := connect(t, g.proxy, up.String()); code != 403 {
		t.Fatalf("CONNECT %s before DNS answered it = %d %q, want 403", up, code, body)
	}
	obs.mu.Lock()
	obs.m[up.Addr()] = []dnsname.Name{ntp}
	obs.mu.Unlock()
	c, br, code, body := connect(t, g.proxy, up.String())
	if code != 200 {
		t.Fatalf("CONNECT %s after DNS answered %s with it = %d %q, want 200", up, ntp, code, body)
	}
	expectEcho(t, c, br, "up", "hello")
	c.Close()
	other := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), up.Port())
	if _, _, code, _ := connect(t, g.proxy, other.String()); code != 403 {
		t.Errorf("CONNECT %s (never answered for %s) = %d, want 403", other, ntp, code)
	}
	// Records are written when flows end, so count rather than order them.
	allowed, denied := 0, 0
	for _, r := range g.logs.Wait(t, 3) {
		switch {
		case r["verdict"] == "allow" && r["rule"] == "ntp" && r["dst"] == up.String():
			allowed++
		case r["verdict"] == "deny":
			denied++
		}
	}
	if allowed != 1 || denied != 2 {
		t.Errorf("records: %d allowed by rule ntp to %s and %d denied, want 1 and 2", allowed, up, denied)
	}
}
