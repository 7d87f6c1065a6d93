//go:build e2e

package egress

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/netclass"
	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// The e2e test builds node → gw → inet in throwaway network namespaces:
//
//	[node] n0 198.18.1.2 ── g0 198.18.1.1 [gw] g1 198.18.2.1 ── i0 198.18.2.2 [inet]
//	inet lo: 198.19.0.10 (allowed.test), 198.19.0.11 (denied.test), HTTPS on :443
//
// gw redirects tcp/80,443 arriving on g0 to :15001 with nftables; the
// gateway runs there as this test binary re-executed under `ip netns exec`
// (TestE2EGatewayHelper), so its outbound sockets live in gw.

const e2eHelperEnv = "AIRLOCK_EGRESS_E2E_GATEWAY"

// TestE2EGatewayHelper is the gateway process of TestE2ETransparent (the
// transparent listener and the explicit proxy, dual-stack, in the mode
// the env variable names; "1" is enforce); it does nothing unless that
// test started it.
func TestE2EGatewayHelper(t *testing.T) {
	mode := os.Getenv(e2eHelperEnv)
	if mode == "" {
		t.Skip("helper process of TestE2ETransparent")
	}
	if mode == "1" {
		mode = string(ModeEnforce)
	}
	p, err := policy.Compile(appPolicy(443, netip.Addr{}, "allowed.test", "metadata.test", "v6.test"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Mode: Mode(mode), AllowIPv6: true, AllowedInternalRanges: netclass.MustParseRanges("198.18.0.0/15", "fdaa::/16")}
	cfg.ProxyEngine = engineUnderTest
	cfg.SetDefaults()
	srv, err := New(&cfg, Deps{
		Policy: p,
		Resolver: fakeResolver{
			"allowed.test":  {netip.MustParseAddr("198.19.0.10")},
			"denied.test":   {netip.MustParseAddr("198.19.0.11")},
			"metadata.test": {netip.MustParseAddr("169.254.169.254")},
			"v6.test":       {netip.MustParseAddr("fdaa:99::10")},
		},
		Logger: slog.New(slog.NewJSONHandler(os.Stdout, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "[::]:15001")
	if err != nil {
		t.Fatal(err)
	}
	pln, err := net.Listen("tcp", "[::]:3128")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeProxy(context.Background(), pln)
	fmt.Fprintln(os.Stderr, "READY")
	srv.ServeTransparent(context.Background(), ln) // until killed
}

// TestE2ETransparent: a node whose tcp/80,443 the gateway host redirects
// to the transparent listener, and which can also use the explicit proxy.
// An allowed FQDN works both ways and over IPv6; a denied FQDN, an IP
// literal, a missing SNI, a name resolving to the metadata address and a
// port no rule allows are denied with the right reason in the record. In
// report mode the policy denies go through, logged as would_deny; the
// metadata address stays denied.
func TestE2ETransparent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("e2e: needs root to create network namespaces (run as root: go test -tags e2e)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("e2e: %s not installed", tool)
		}
	}
	for _, mode := range []Mode{ModeEnforce, ModeReport} {
		t.Run(string(mode), func(t *testing.T) { testTransparentE2E(t, mode) })
	}
}

func testTransparentE2E(t *testing.T, mode Mode) {
	report := mode == ModeReport
	tp := e2eTopology(t)
	node, gwns, inet, g0 := tp.node, tp.gw, tp.inet, tp.g0
	rules := fmt.Sprintf(`table inet alxu {
  chain prerouting { type nat hook prerouting priority dstnat; policy accept;
    iifname %q tcp dport { 80, 443 } redirect to :15001
  }
  chain forward { type filter hook forward priority filter; policy drop;
  }
}
`, g0)
	cmd := exec.Command("ip", "netns", "exec", gwns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}

	// The "internet": HTTPS servers that say who they are.
	for _, h := range []struct{ addr, id string }{
		{"198.19.0.10:443", "allowed"}, {"198.19.0.11:443", "denied"}, {"198.19.0.10:8443", "allowed on 8443"},
		{"169.254.169.254:443", "metadata"}, {"[fdaa:99::10]:443", "allowed6"},
	} {
		netnstest.Do(t, inet, func() {
			ln, err := net.Listen("tcp", h.addr)
			if err != nil {
				t.Fatalf("listen %s in %s: %v", h.addr, inet, err)
			}
			s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "I am %s", h.id)
			}))
			s.Listener.Close()
			s.Listener = ln
			s.StartTLS()
			t.Cleanup(s.Close)
		})
	}

	// The gateway, in gw.
	logs := startGatewayHelperEnv(t, gwns, "TestE2EGatewayHelper", e2eHelperEnv+"="+string(mode))

	// The node's clients: straight to the destination (redirected), or
	// CONNECT through the proxy on the gateway's address.
	get := func(dst, sni string) (string, error) {
		var c net.Conn
		var err error
		netnstest.Do(t, node, func() { c, err = net.DialTimeout("tcp", dst, 5*time.Second) })
		if err != nil {
			return "", err
		}
		defer c.Close()
		return tlsGet(c, sni)
	}
	viaProxy := func(target, sni string) (string, error) {
		var c net.Conn
		var err error
		netnstest.Do(t, node, func() { c, err = net.DialTimeout("tcp", "198.18.1.1:3128", 5*time.Second) })
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		br := bufio.NewReader(c)
		status, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return "", err
			}
			if line == "\r\n" {
				break
			}
		}
		if f := strings.Fields(status); len(f) < 2 || f[1] != "200" {
			return "", fmt.Errorf("CONNECT %s: %s", target, strings.TrimSpace(status))
		}
		return tlsGet(bufConn{c, br}, sni)
	}
	pick := func(enforce, rep string) string {
		if report {
			return rep
		}
		return enforce
	}
	cases := []struct {
		name, via, dst, sni, want string
	}{
		{"allowed SNI", "redirect", "198.19.0.10:443", "allowed.test", "I am allowed"},
		{"allowed SNI aimed at the denied host's IP", "redirect", "198.19.0.11:443", "allowed.test", "I am allowed"},
		{"denied SNI", "redirect", "198.19.0.11:443", "denied.test", pick("", "I am denied")},
		{"missing SNI", "redirect", "198.19.0.10:443", "", pick("", "I am allowed")},
		{"allowed name resolving to the metadata address", "redirect", "198.19.0.10:443", "metadata.test", ""},
		{"allowed SNI over IPv6", "redirect", "[fdaa:99::10]:443", "v6.test", "I am allowed6"},
		{"CONNECT allowed name", "proxy", "allowed.test:443", "allowed.test", "I am allowed"},
		{"CONNECT IP literal", "proxy", "198.19.0.10:443", "allowed.test", pick("", "I am allowed")},
		{"CONNECT port no rule allows", "proxy", "allowed.test:8443", "allowed.test", pick("", "I am allowed on 8443")},
		{"CONNECT metadata IP literal", "proxy", "169.254.169.254:443", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body string
			var err error
			if tc.via == "proxy" {
				body, err = viaProxy(tc.dst, tc.sni)
			} else {
				body, err = get(tc.dst, tc.sni)
			}
			if tc.want == "" {
				if err == nil {
					t.Errorf("%s %s with SNI %q = %q, want the connection refused or closed", tc.via, tc.dst, tc.sni, body)
				}
				return
			}
			if err != nil || body != tc.want {
				t.Errorf("%s %s with SNI %q = %q, %v; want %q", tc.via, tc.dst, tc.sni, body, err, tc.want)
			}
		})
	}

	// The gateway's records: one per flow, with the original destination,
	// as "listener verdict reason name dst upstream would_deny". CONNECT to
	// an IP literal is https without a name: sni_missing.
	wd := fmt.Sprint(report)
	want := map[string]bool{
		"transparent allow rule_allow allowed.test 198.19.0.10:443 198.19.0.10:443 false":                      true,
		"transparent allow rule_allow allowed.test 198.19.0.11:443 198.19.0.10:443 false":                      true,
		"transparent deny no_match denied.test 198.19.0.11:443 " + pick("<nil>", "198.19.0.11:443") + " " + wd: true,
		"transparent deny sni_missing <nil> 198.19.0.10:443 " + pick("<nil>", "198.19.0.10:443") + " " + wd:    true,
		"transparent deny internal_address metadata.test 198.19.0.10:443 <nil> false":                          true,
		"transparent allow rule_allow v6.test [fdaa:99::10]:443 [fdaa:99::10]:443 false":                       true,
		"proxy allow rule_allow allowed.test <nil> 198.19.0.10:443 false":                                      true,
		"proxy deny sni_missing <nil> 198.19.0.10:443 " + pick("<nil>", "198.19.0.10:443") + " " + wd:          true,
		"proxy deny no_match allowed.test <nil> " + pick("<nil>", "198.19.0.10:8443") + " " + wd:               true,
		"proxy deny " + pick("sni_missing", "internal_address") + " <nil> 169.254.169.254:443 <nil> false":     true,
	}
	deadline := time.Now().Add(5 * time.Second)
	var recs []map[string]any
	for time.Now().Before(deadline) {
		recs = recs[:0]
		data, _ := os.ReadFile(logs.Name())
		for _, line := range strings.Split(string(data), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == recordMsg {
				recs = append(recs, m)
			}
		}
		if len(recs) >= len(cases) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, r := range recs {
		w, _ := r["would_deny"].(bool)
		k := fmt.Sprint(r["listener"], " ", r["verdict"], " ", r["reason"], " ", r["name"], " ", r["dst"], " ", r["upstream"], " ", w)
		if !want[k] {
			t.Errorf("unexpected record %v (key %q)", r, k)
		}
		delete(want, k)
	}
	for k := range want {
		t.Errorf("no record %q", k)
	}
}

// bufConn reads through a bufio.Reader that may hold bytes already read.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// topology is node → gw → inet in throwaway namespaces (see the comment at
// the top of this file), IPv4 and IPv6:
//
//	node n0 198.18.1.2 (and .3, a second source) fdaa:1::2 ── g0 198.18.1.1 fdaa:1::1 [gw]
//	gw g1 198.18.2.1 fdaa:2::1 ── i0 198.18.2.2 fdaa:2::2 [inet]
//	inet lo: 198.19.0.10, 198.19.0.11, 169.254.169.254 (metadata), fdaa:99::10, fdaa:99::11
type topology struct{ node, gw, inet, g0 string }

func e2eTopology(t *testing.T) topology {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	sfx := hex.EncodeToString(b)
	node, gwns, inet := "alxu-node-"+sfx, "alxu-gw-"+sfx, "alxu-inet-"+sfx
	n0, g0, g1, i0 := "alxu"+sfx+"n0", "alxu"+sfx+"g0", "alxu"+sfx+"g1", "alxu"+sfx+"i0"
	for _, ns := range []string{node, gwns, inet} {
		netnstest.Add(t, ns)
	}
	netnstest.Exec(t, "ip", "link", "add", n0, "netns", node, "type", "veth", "peer", "name", g0, "netns", gwns)
	netnstest.Exec(t, "ip", "link", "add", g1, "netns", gwns, "type", "veth", "peer", "name", i0, "netns", inet)
	netnstest.Exec(t, "ip", "-n", node, "addr", "add", "198.18.1.2/24", "dev", n0)
	netnstest.Exec(t, "ip", "-n", node, "addr", "add", "198.18.1.3/24", "dev", n0)
	netnstest.Exec(t, "ip", "-n", node, "-6", "addr", "add", "fdaa:1::2/64", "dev", n0, "nodad")
	netnstest.Exec(t, "ip", "-n", node, "link", "set", n0, "up")
	netnstest.Exec(t, "ip", "-n", node, "route", "add", "default", "via", "198.18.1.1")
	netnstest.Exec(t, "ip", "-n", node, "-6", "route", "add", "default", "via", "fdaa:1::1")
	netnstest.Exec(t, "ip", "-n", gwns, "addr", "add", "198.18.1.1/24", "dev", g0)
	netnstest.Exec(t, "ip", "-n", gwns, "addr", "add", "198.18.2.1/24", "dev", g1)
	netnstest.Exec(t, "ip", "-n", gwns, "-6", "addr", "add", "fdaa:1::1/64", "dev", g0, "nodad")
	netnstest.Exec(t, "ip", "-n", gwns, "-6", "addr", "add", "fdaa:2::1/64", "dev", g1, "nodad")
	netnstest.Exec(t, "ip", "-n", gwns, "link", "set", g0, "up")
	netnstest.Exec(t, "ip", "-n", gwns, "link", "set", g1, "up")
	netnstest.Exec(t, "ip", "-n", gwns, "route", "add", "default", "via", "198.18.2.2")
	netnstest.Exec(t, "ip", "-n", gwns, "-6", "route", "add", "default", "via", "fdaa:2::2")
	netnstest.Exec(t, "ip", "netns", "exec", gwns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	netnstest.Exec(t, "ip", "-n", inet, "addr", "add", "198.18.2.2/24", "dev", i0)
	netnstest.Exec(t, "ip", "-n", inet, "-6", "addr", "add", "fdaa:2::2/64", "dev", i0, "nodad")
	netnstest.Exec(t, "ip", "-n", inet, "link", "set", i0, "up")
	for _, a := range []string{"198.19.0.10/32", "198.19.0.11/32", "169.254.169.254/32"} {
		netnstest.Exec(t, "ip", "-n", inet, "addr", "add", a, "dev", "lo")
	}
	for _, a := range []string{"fdaa:99::10/128", "fdaa:99::11/128"} {
		netnstest.Exec(t, "ip", "-n", inet, "-6", "addr", "add", a, "dev", "lo", "nodad")
	}
	netnstest.Exec(t, "ip", "-n", inet, "route", "add", "198.18.1.0/24", "via", "198.18.2.1")
	netnstest.Exec(t, "ip", "-n", inet, "-6", "route", "add", "fdaa:1::/64", "via", "fdaa:2::1")
	return topology{node: node, gw: gwns, inet: inet, g0: g0}
}

// startGatewayHelper runs this test binary's helper test (a gateway) inside
// namespace ns with env set, waits for it to print READY, and returns the
// file its stdout (the decision records) goes to. It is killed at cleanup.
func startGatewayHelper(t *testing.T, ns, test, env string) *os.File {
	t.Helper()
	return startGatewayHelperEnv(t, ns, test, env+"=1")
}

// startGatewayHelperEnv is startGatewayHelper with env given as KEY=VALUE.
func startGatewayHelperEnv(t *testing.T, ns, test, env string) *os.File {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logs, err := os.CreateTemp(t.TempDir(), "gw-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(os.Environ(), env)
	cmd.Stdout = logs
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready <- true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("gateway helper %s did not start", test)
	}
	return logs
}
