package egress

import (
	"context"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlockdev/airlock/internal/cluster"
	"github.com/airlockdev/airlock/internal/dnsserver"
	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/testkit/dnstest"
	"github.com/airlockdev/airlock/internal/testkit/redistest"
)

var _ ClusterNames = (*dnsserver.Observations)(nil)

// startCluster starts one replica's Cluster on r.
func startCluster(t *testing.T, r *redistest.Redis, name string) *cluster.Cluster {
	t.Helper()
	cl, err := cluster.New(cluster.Config{Name: name, Redis: cluster.RedisConfig{Addresses: []string{r.Addr}, KeyPrefix: "test:"}},
		cluster.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("cluster.New: %v", err)
	}
	if err := cl.Start(context.Background()); err != nil {
		t.Fatalf("cluster Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cl.Shutdown(ctx)
	})
	deadline := time.Now().Add(10 * time.Second)
	for d, _ := cl.Degraded(); d; d, _ = cl.Degraded() {
		if time.Now().After(deadline) {
			t.Fatalf("cluster %s: redis not up", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cl
}

func startSharer(t *testing.T, sh *dnsserver.Sharer) {
	t.Helper()
	if err := sh.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sh.Shutdown(ctx)
	})
}

// Two replicas behind one address: a client resolves a name through
// replica A's DNS and connects to the address through replica B's
// gateway, whose own DNS never answered it. B's FQDN network rule lets the
// flow through because A's observation is shared; an address nobody
// resolved is still denied.
func TestFQDNNetworkRuleAcrossReplicas(t *testing.T) {
	r := redistest.Start(t)
	up := echoServer(t, "127.0.0.1:0", "up")
	port := strconv.Itoa(int(up.Port()))
	zone := dnstest.NewZone(t, map[string][]string{
		"ntp.example./A": {"ntp.example. 60 IN A " + up.Addr().String()},
	})
	polCfg := policy.Config{RuleCollectionGroups: []policy.RuleCollectionGroup{{Name: "g", Priority: 100, RuleCollections: []policy.RuleCollection{{
		Name: "net", Type: policy.TypeNetwork, Priority: 100, Action: policy.ActionAllow,
		Rules: []policy.Rule{{Name: "ntp", SourceAddresses: []string{"*"}, Protocols: []string{"TCP"}, DestinationFqdns: []string{"ntp.example"}, DestinationPorts: []string{port}}},
	}}}}}
	pol, err := policy.Compile(polCfg)
	if err != nil {
		t.Fatal(err)
	}

	// Replica A: its DNS answers the name and shares what it answered.
	var dcfg dnsserver.Config
	dcfg.SetDefaults()
	dcfg.Listen, dcfg.Forwarders = "127.0.0.1:0", []string{zone.Addr}
	dnsA, err := dnsserver.New(dcfg, dnsserver.Deps{Policy: pol, AllowedInternalRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := dnsA.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		dnsA.Shutdown(ctx)
	})
	startSharer(t, dnsA.ShareObservations(startCluster(t, r, "a"), dnsserver.ShareDeps{}))

	// Replica B: an empty store of its own, shared; its gateway.
	obsB := dnsserver.NewObservations(0)
	startSharer(t, obsB.Share(startCluster(t, r, "b"), dnsserver.ShareDeps{}))
	g := startGateway(t, gwOptions{cfg: Config{AllowedInternalRanges: loopbackRange}, policy: polCfg, names: obsB})

	other := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), up.Port())
	if _, _, code, _ := connect(t, g.proxy, up.String()); code != 403 {
		t.Fatalf("CONNECT %s through B before anyone resolved ntp.example = %d, want 403", up, code)
	}

	m := new(dns.Msg)
	m.SetQuestion("ntp.example.", dns.TypeA)
	in, err := dns.Exchange(m, dnsA.Addr().String())
	if err != nil || len(in.Answer) != 1 {
		t.Fatalf("A's DNS for ntp.example = %v, %v; want one A record", in, err)
	}

	// Publishing is asynchronous, and B asks again at most once a second.
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, br, code, body := connect(t, g.proxy, up.String())
		if code == 200 {
			expectEcho(t, c, br, "up", "hello")
			c.Close()
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("CONNECT %s through B after A's DNS answered ntp.example = %d %q, want 200", up, code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := obsB.NamesFor(up.Addr(), time.Now()); len(got) != 1 || got[0].String() != "ntp.example" {
		t.Errorf("B's observations after the flow = %v, want ntp.example (learnt from A)", got)
	}
	if _, _, code, _ := connect(t, g.proxy, other.String()); code != 403 {
		t.Errorf("CONNECT %s (nobody resolved it) through B = %d, want 403", other, code)
	}
}
