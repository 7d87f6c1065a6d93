package dnsserver

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/testkit/logcap"
)

// testPolicy allows *.allowed.test, allowed.test, ntp.test (network rule),
// and denies deny.allowed.test first.
func testPolicy(t testing.TB) *policy.Policy {
	t.Helper()
	p, err := policy.Compile(policy.Config{RuleCollectionGroups: []policy.RuleCollectionGroup{{
		Name: "g", Priority: 100,
		RuleCollections: []policy.RuleCollection{
			{Name: "net", Type: policy.TypeNetwork, Priority: 100, Action: policy.ActionAllow, Rules: []policy.Rule{
				{Name: "ntp", Protocols: []string{"UDP"}, SourceAddresses: []string{"*"}, DestinationFqdns: []string{"ntp.test"}, DestinationPorts: []string{"123"}},
			}},
			{Name: "appdeny", Type: policy.TypeApplication, Priority: 150, Action: policy.ActionDeny, Rules: []policy.Rule{
				{Name: "bad", Protocols: []string{"https:443"}, SourceAddresses: []string{"*"}, TargetFqdns: []string{"deny.allowed.test"}},
			}},
			{Name: "app", Type: policy.TypeApplication, Priority: 200, Action: policy.ActionAllow, Rules: []policy.Rule{
				{Name: "web", Protocols: []string{"https:443"}, SourceAddresses: []string{"*"}, TargetFqdns: []string{"allowed.test", "*.allowed.test"}},
			}},
		},
	}}})
	if err != nil {
		t.Fatalf("policy.Compile: %v", err)
	}
	return p
}

// clock is an injectable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a running server with its upstream(s).
type env struct {
	srv   *Server
	addr  string
	logs  *logcap.Capture // decision records
	clock *clock
}

// start runs a server for cfg (defaults applied first by the caller's
// modifier) on loopback and stops it at the end of the test.
func start(t *testing.T, cfg Config, deps Deps) *env {
	t.Helper()
	e := &env{logs: logcap.New("dns decision"), clock: newClock()}
	if deps.Logger == nil {
		deps.Logger = e.logs.Logger()
	}
	if deps.Now == nil {
		deps.Now = e.clock.Now
	}
	if deps.Policy == nil {
		deps.Policy = testPolicy(t)
	}
	cfg.Listen = "127.0.0.1:0"
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	pc, ln, err := listenBoth(cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, pc, ln) }()
	for srv.Addr() == nil {
		time.Sleep(time.Millisecond)
	}
	e.srv, e.addr = srv, pc.LocalAddr().String()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return e
}

func defaults(forwarders ...string) Config {
	var c Config
	c.SetDefaults()
	c.Forwarders = forwarders
	c.LogAllowed = LogAll
	return c
}

// ask sends one query over UDP (with EDNS0 bufsize when > 0) or TCP.
func (e *env) ask(t *testing.T, name string, qtype uint16, tcp bool, bufsize uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if bufsize > 0 {
		m.SetEdns0(bufsize, false)
	}
	c := &dns.Client{Timeout: 5 * time.Second}
	if tcp {
		c.Net = "tcp"
	}
	r, _, err := c.Exchange(m, e.addr)
	if err != nil {
		t.Fatalf("exchange %s %s: %v", name, dns.Type(qtype), err)
	}
	return r
}

func addrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if a, ok := addrOf(rr); ok {
			out = append(out, a.String())
		}
	}
	return out
}

func types(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		out = append(out, dns.Type(rr.Header().Rrtype).String())
	}
	return out
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
