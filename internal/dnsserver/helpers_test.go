package dnsserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
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

// upstream is a fake forwarder on loopback (UDP and TCP on one port). Its
// zone maps "name./TYPE" to records in zone-file syntax.
type upstream struct {
	addr    string
	mu      sync.Mutex
	zone    map[string][]string
	queries atomic.Int64
	stop    func()
}

func newUpstream(t *testing.T, zone map[string][]string) *upstream {
	t.Helper()
	u := &upstream{zone: zone}
	pc, ln, err := listenBoth("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(u.serve)
	us := &dns.Server{PacketConn: pc, Handler: h}
	ts := &dns.Server{Listener: ln, Handler: h}
	for _, s := range []*dns.Server{us, ts} {
		ready := make(chan struct{})
		s.NotifyStartedFunc = func() { close(ready) }
		go s.ActivateAndServe()
		<-ready
	}
	var once sync.Once
	u.stop = func() {
		once.Do(func() {
			us.Shutdown()
			ts.Shutdown()
		})
	}
	t.Cleanup(u.stop)
	return u
}

func (u *upstream) set(key string, rrs ...string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.zone[key] = rrs
}

func (u *upstream) serve(w dns.ResponseWriter, r *dns.Msg) {
	u.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	key := strings.ToLower(q.Name) + "/" + dns.Type(q.Qtype).String()
	u.mu.Lock()
	rrs, ok := u.zone[key]
	u.mu.Unlock()
	if !ok {
		m.Rcode = dns.RcodeNameError
		soa, _ := dns.NewRR("test. 600 IN SOA ns.test. h.test. 1 3600 600 86400 120")
		m.Ns = []dns.RR{soa}
	}
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			panic(fmt.Sprintf("bad test record %q: %v", s, err))
		}
		m.Answer = append(m.Answer, rr)
	}
	size := dns.MinMsgSize
	if o := r.IsEdns0(); o != nil {
		size = int(o.UDPSize())
		m.SetEdns0(o.UDPSize(), false)
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		m.Truncate(size)
	}
	w.WriteMsg(m)
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
