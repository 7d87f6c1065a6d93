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
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airlockdev/airlock/internal/policy"
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

// TestE2EGatewayHelper is the gateway process of TestE2ETransparent; it
// does nothing unless that test started it.
func TestE2EGatewayHelper(t *testing.T) {
	if os.Getenv(e2eHelperEnv) == "" {
		t.Skip("helper process of TestE2ETransparent")
	}
	p, err := policy.Compile(appPolicy(443, netip.Addr{}, "allowed.test"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{AllowedInternalRanges: []string{"198.18.0.0/15"}}
	cfg.SetDefaults()
	srv, err := New(&cfg, Deps{
		Policy: p,
		Resolver: fakeResolver{
			"allowed.test": {netip.MustParseAddr("198.19.0.10")},
			"denied.test":  {netip.MustParseAddr("198.19.0.11")},
		},
		Logger: slog.New(slog.NewJSONHandler(os.Stdout, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "0.0.0.0:15001")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(os.Stderr, "READY")
	srv.ServeTransparent(context.Background(), ln) // until killed
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// inNetns runs fn on an OS thread switched into the named namespace. The
// thread is thrown away afterwards (the goroutine exits locked).
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			t.Errorf("open netns %s: %v", ns, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Errorf("setns %s: %v", ns, err)
			return
		}
		fn()
	}()
	<-done
}

func TestE2ETransparent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("e2e: needs root to create network namespaces (run as root: go test -tags e2e)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("e2e: %s not installed", tool)
		}
	}
	tp := e2eTopology(t)
	node, gwns, inet, g0 := tp.node, tp.gw, tp.inet, tp.g0
	rules := fmt.Sprintf(`table inet alx {
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

	// The "internet": two HTTPS servers that say who they are.
	for _, h := range []struct{ addr, id string }{{"198.19.0.10:443", "allowed"}, {"198.19.0.11:443", "denied"}} {
		inNetns(t, inet, func() {
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
	logs := startGatewayHelper(t, gwns, "TestE2EGatewayHelper", e2eHelperEnv)

	// The node's clients.
	get := func(dst, sni string) (string, error) {
		var c net.Conn
		var err error
		inNetns(t, node, func() { c, err = net.DialTimeout("tcp", dst, 5*time.Second) })
		if err != nil {
			return "", err
		}
		defer c.Close()
		return tlsGet(c, sni)
	}
	cases := []struct {
		name, dst, sni, want string
	}{
		{"allowed SNI", "198.19.0.10:443", "allowed.test", "I am allowed"},
		{"allowed SNI aimed at the denied host's IP", "198.19.0.11:443", "allowed.test", "I am allowed"},
		{"denied SNI", "198.19.0.11:443", "denied.test", ""},
		{"missing SNI", "198.19.0.10:443", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, err := get(tc.dst, tc.sni)
			if tc.want == "" {
				if err == nil {
					t.Errorf("GET %s with SNI %q = %q, want the connection closed", tc.dst, tc.sni, body)
				}
				return
			}
			if err != nil || body != tc.want {
				t.Errorf("GET %s with SNI %q = %q, %v; want %q", tc.dst, tc.sni, body, err, tc.want)
			}
		})
	}

	// The gateway's records: one per flow, with the original destination.
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
	want := map[string]bool{
		"allow rule_allow allowed.test 198.19.0.10:443 198.19.0.10:443": true,
		"allow rule_allow allowed.test 198.19.0.11:443 198.19.0.10:443": true,
		"deny no_match denied.test 198.19.0.11:443 <nil>":               true,
		"deny sni_missing <nil> 198.19.0.10:443 <nil>":                  true,
	}
	for _, r := range recs {
		k := fmt.Sprint(r["verdict"], " ", r["reason"], " ", r["name"], " ", r["dst"], " ", r["upstream"])
		if !want[k] {
			t.Errorf("unexpected record %v (key %q)", r, k)
		}
		delete(want, k)
	}
	for k := range want {
		t.Errorf("no record %q", k)
	}
}

// topology is node → gw → inet in throwaway namespaces (see the comment at
// the top of this file).
type topology struct{ node, gw, inet, g0 string }

func e2eTopology(t *testing.T) topology {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	sfx := hex.EncodeToString(b)
	node, gwns, inet := "alx-node-"+sfx, "alx-gw-"+sfx, "alx-inet-"+sfx
	n0, g0, g1, i0 := "alx"+sfx+"n0", "alx"+sfx+"g0", "alx"+sfx+"g1", "alx"+sfx+"i0"
	for _, ns := range []string{node, gwns, inet} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "link", "add", n0, "netns", node, "type", "veth", "peer", "name", g0, "netns", gwns)
	run(t, "ip", "link", "add", g1, "netns", gwns, "type", "veth", "peer", "name", i0, "netns", inet)
	run(t, "ip", "-n", node, "addr", "add", "198.18.1.2/24", "dev", n0)
	run(t, "ip", "-n", node, "link", "set", n0, "up")
	run(t, "ip", "-n", node, "route", "add", "default", "via", "198.18.1.1")
	run(t, "ip", "-n", gwns, "addr", "add", "198.18.1.1/24", "dev", g0)
	run(t, "ip", "-n", gwns, "addr", "add", "198.18.2.1/24", "dev", g1)
	run(t, "ip", "-n", gwns, "link", "set", g0, "up")
	run(t, "ip", "-n", gwns, "link", "set", g1, "up")
	run(t, "ip", "-n", gwns, "route", "add", "default", "via", "198.18.2.2")
	run(t, "ip", "netns", "exec", gwns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	run(t, "ip", "-n", inet, "addr", "add", "198.18.2.2/24", "dev", i0)
	run(t, "ip", "-n", inet, "link", "set", i0, "up")
	run(t, "ip", "-n", inet, "addr", "add", "198.19.0.10/32", "dev", "lo")
	run(t, "ip", "-n", inet, "addr", "add", "198.19.0.11/32", "dev", "lo")
	run(t, "ip", "-n", inet, "route", "add", "198.18.1.0/24", "via", "198.18.2.1")
	return topology{node: node, gw: gwns, inet: inet, g0: g0}
}

// startGatewayHelper runs this test binary's helper test (a gateway) inside
// namespace ns with env set, waits for it to print READY, and returns the
// file its stdout (the decision records) goes to. It is killed at cleanup.
func startGatewayHelper(t *testing.T, ns, test, env string) *os.File {
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
	cmd.Env = append(os.Environ(), env+"=1")
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
