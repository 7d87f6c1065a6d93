package egress

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/testkit/logcap"
	dto "github.com/prometheus/client_model/go"
)

// fakeResolver answers from a map; a name not in it fails like NXDOMAIN.
type fakeResolver map[string][]netip.Addr

func (r fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	addrs, ok := r[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

// engineUnderTest is the explicit proxy's engine in this package's tests
// unless a test sets one: AIRLOCK_TEST_PROXY_ENGINE (loop, goroutine),
// else the default. `make unit` and `make e2e` run the package with each.
var engineUnderTest = Engine(os.Getenv("AIRLOCK_TEST_PROXY_ENGINE"))

// gw is a gateway under test on loopback.
type gw struct {
	srv   *Server
	proxy string // explicit proxy address
	trans string // transparent listener address
	logs  *logcap.Capture
	m     *Metrics
}

type gwOptions struct {
	cfg      Config
	policy   policy.Config
	resolver fakeResolver
	res      Resolver // instead of resolver when set
	origDst  func(*net.TCPConn) (netip.AddrPort, error)
	names    NameSource
	hits     *policy.Hits
}

// allowedGateway starts a gateway whose policy allows https to
// allowed.test on up's port, the name resolving to 127.0.0.1 (where up
// listens).
func allowedGateway(t *testing.T, up netip.AddrPort) *gw {
	t.Helper()
	return startGateway(t, gwOptions{
		cfg:      Config{AllowedInternalRanges: loopbackRange},
		policy:   appPolicy(up.Port(), netip.Addr{}, "allowed.test"),
		resolver: fakeResolver{"allowed.test": {netip.MustParseAddr("127.0.0.1")}},
	})
}

func startGateway(t *testing.T, o gwOptions) *gw {
	t.Helper()
	p, err := policy.Compile(o.policy)
	if err != nil {
		t.Fatalf("policy.Compile: %v", err)
	}
	logs := logcap.New(recordMsg)
	m := NewMetrics(nil)
	cfg := o.cfg
	cfg.ProxyEngine = cmp.Or(cfg.ProxyEngine, engineUnderTest)
	cfg.SetDefaults()
	var res Resolver = o.resolver
	if o.res != nil {
		res = o.res
	}
	srv, err := New(&cfg, Deps{
		Policy: p, Resolver: res, Metrics: m, OriginalDst: o.origDst, Names: o.names,
		Logger: logs.Logger(), Hits: o.hits,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	g := &gw{srv: srv, logs: logs, m: m}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, l := range []struct {
		addr  *string
		serve func(context.Context, net.Listener) error
	}{{&g.proxy, srv.ServeProxy}, {&g.trans, srv.ServeTransparent}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		*l.addr = ln.Addr().String()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.serve(ctx, ln); err != nil {
				t.Errorf("Serve: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		srv.Shutdown(sctx)
		cancel()
		wg.Wait()
	})
	return g
}

// echoServer listens on addr ("127.0.0.1:0" for any port), writes
// "id:<id>\n" to each client, then echoes.
func echoServer(t *testing.T, addr, id string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, "id:"+id+"\n")
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// appPolicy allows the names over https and http on port, and (if netAddr
// is valid) a network rule for netAddr:port.
func appPolicy(port uint16, netAddr netip.Addr, names ...string) policy.Config {
	p := strconv.Itoa(int(port))
	colls := []policy.RuleCollection{{
		Name: "web", Type: policy.TypeApplication, Priority: 200, Action: policy.ActionAllow,
		Rules: []policy.Rule{{Name: "allowed", SourceAddresses: []string{"*"}, Protocols: []string{"https:" + p, "http:" + p}, TargetFqdns: names}},
	}}
	if netAddr.IsValid() {
		colls = append(colls, policy.RuleCollection{
			Name: "net", Type: policy.TypeNetwork, Priority: 100, Action: policy.ActionAllow,
			Rules: []policy.Rule{{Name: "ip", SourceAddresses: []string{"*"}, Protocols: []string{"TCP"}, DestinationAddresses: []string{netAddr.String()}, DestinationPorts: []string{p}}},
		})
	}
	return policy.Config{RuleCollectionGroups: []policy.RuleCollectionGroup{{Name: "g", Priority: 100, RuleCollections: colls}}}
}

// connect sends CONNECT target through the proxy and returns the
// connection, the status code and (for a non-200) the body.
func connect(t testing.TB, proxy, target string) (net.Conn, *bufio.Reader, int, string) {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("CONNECT %s: reading status: %v", target, err)
	}
	f := strings.Fields(status)
	if len(f) < 2 {
		t.Fatalf("CONNECT %s: status line %q", target, status)
	}
	code, _ := strconv.Atoi(f[1])
	var body strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil || line == "\r\n" {
			break
		}
	}
	if code != 200 {
		io.Copy(&body, br)
	}
	return c, br, code, body.String()
}

// expectEcho checks the identity line and one echo round trip.
func expectEcho(t testing.TB, c net.Conn, br *bufio.Reader, id, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading identity: %v", err)
	}
	if got, want := strings.TrimSpace(line), "id:"+id; got != want {
		t.Fatalf("identity = %q, want %q", got, want)
	}
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading echo: %v", err)
	}
	if strings.TrimSpace(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// expectClosed checks that the server closes c without sending data.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read after deny = %d, %v; want 0 and EOF or reset", n, err)
	}
}

// expectEcho2 is one echo round trip without the identity line.
func expectEcho2(t testing.TB, c net.Conn, br *bufio.Reader, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Errorf("write %q: %v", msg, err)
		return
	}
	got, err := br.ReadString('\n')
	if err != nil || strings.TrimSpace(got) != msg {
		t.Errorf("echo = %q, %v; want %q", got, err, msg)
	}
}

func testutilGauge(m *Metrics) float64 {
	var out dto.Metric
	m.Tunnels.Write(&out)
	return out.GetGauge().GetValue()
}
