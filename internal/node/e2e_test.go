//go:build e2e

package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/hostfw"
	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// nsRunner runs every command inside network namespace ns.
type nsRunner struct{ ns string }

func (r nsRunner) Run(ctx context.Context, stdin, name string, args ...string) ([]byte, error) {
	return hostfw.Exec{}.Run(ctx, stdin, "ip", append([]string{"netns", "exec", r.ns, name}, args...)...)
}

// topo is pod → node → gw, each a network namespace:
//
//	pod  198.18.65.2/24 fdaa:65::2/64          default via node (v4 and v6)
//	node 198.18.65.1/24 fdaa:65::1/64, 198.18.61.2/24 fdaa:61::2/64   default via 198.18.61.254 (nobody), v6 via fdaa:61::1;
//	     169.254.169.254 via 198.18.61.1
//	gw   198.18.61.1/24 + .5, fdaa:61::1/64; lo 198.18.62.10, 198.18.64.10, fdaa:62::10, 169.254.169.254 (metadata stand-in)
//
// node forwards IPv4 and IPv6. gw listens on :5000 (the "registry") and
// :443 on every address.
type topo struct {
	pod, node, gw string
}

func newTopo(t *testing.T) *topo {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and nftables")
	}
	for _, bin := range []string{"nft", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (scripts/deps.sh installs nftables and iproute2)", bin)
		}
	}
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	tp := &topo{pod: "alxn-p-" + id, node: "alxn-n-" + id, gw: "alxn-g-" + id}
	for _, ns := range []string{tp.pod, tp.node, tp.gw} {
		netnstest.Add(t, ns)
	}
	netnstest.Exec(t, "ip", "link", "add", "p0", "netns", tp.pod, "type", "veth", "peer", "name", "n1", "netns", tp.node)
	netnstest.Exec(t, "ip", "link", "add", "n0", "netns", tp.node, "type", "veth", "peer", "name", "g0", "netns", tp.gw)
	for _, c := range [][]string{
		{"-n", tp.pod, "addr", "add", "198.18.65.2/24", "dev", "p0"},
		{"-n", tp.pod, "link", "set", "p0", "up"},
		{"-n", tp.pod, "route", "add", "default", "via", "198.18.65.1"},
		{"-n", tp.pod, "-6", "addr", "add", "fdaa:65::2/64", "dev", "p0", "nodad"},
		{"-n", tp.pod, "-6", "route", "add", "default", "via", "fdaa:65::1"},
		{"-n", tp.node, "addr", "add", "198.18.65.1/24", "dev", "n1"},
		{"-n", tp.node, "-6", "addr", "add", "fdaa:65::1/64", "dev", "n1", "nodad"},
		{"-n", tp.node, "addr", "add", "198.18.61.2/24", "dev", "n0"},
		{"-n", tp.node, "-6", "addr", "add", "fdaa:61::2/64", "dev", "n0", "nodad"},
		{"-n", tp.node, "link", "set", "n1", "up"},
		{"-n", tp.node, "link", "set", "n0", "up"},
		{"-n", tp.node, "route", "add", "default", "via", "198.18.61.254"},
		{"-n", tp.node, "-6", "route", "add", "default", "via", "fdaa:61::1"},
		{"-n", tp.node, "route", "add", "198.18.64.0/24", "via", "198.18.61.5"},
		{"-n", tp.node, "route", "add", "169.254.169.254/32", "via", "198.18.61.1"},
		{"-n", tp.gw, "addr", "add", "198.18.61.1/24", "dev", "g0"},
		{"-n", tp.gw, "addr", "add", "198.18.61.5/24", "dev", "g0"},
		{"-n", tp.gw, "-6", "addr", "add", "fdaa:61::1/64", "dev", "g0", "nodad"},
		{"-n", tp.gw, "link", "set", "g0", "up"},
		{"-n", tp.gw, "addr", "add", "198.18.62.10/32", "dev", "lo"},
		{"-n", tp.gw, "addr", "add", "198.18.64.10/32", "dev", "lo"},
		{"-n", tp.gw, "-6", "addr", "add", "fdaa:62::10/128", "dev", "lo"},
		{"-n", tp.gw, "addr", "add", "169.254.169.254/32", "dev", "lo"},
		{"-n", tp.gw, "route", "add", "198.18.65.0/24", "via", "198.18.61.2"},
		{"-n", tp.gw, "-6", "route", "add", "fdaa:65::/64", "via", "fdaa:61::2"},
	} {
		netnstest.Exec(t, append([]string{"ip"}, c...)...)
	}
	netnstest.Exec(t, "ip", "netns", "exec", tp.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	netnstest.Exec(t, "ip", "netns", "exec", tp.node, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	for _, port := range []string{"5000", "443"} {
		acceptAndClose(t, tp.gw, ":"+port)
	}
	return tp
}

// connects reports whether a TCP connect from ns to addr succeeds.
func connects(t *testing.T, ns, addr string) bool {
	t.Helper()
	var err error
	netnstest.Do(t, ns, func() {
		var c net.Conn
		c, err = net.DialTimeout("tcp", addr, 700*time.Millisecond)
		if err == nil {
			c.Close()
		}
	})
	return err == nil
}

type reach struct {
	from, addr string
	want       bool
}

func checkReach(t *testing.T, when string, cases []reach) {
	t.Helper()
	for _, c := range cases {
		if got := connects(t, c.from, c.addr); got != c.want {
			t.Errorf("%s: TCP connect from %s to %s = %v, want %v", when, c.from, c.addr, got, c.want)
		}
	}
}

var counters = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// listTable is airlock's table as nft lists it in ns, counters zeroed; ""
// when it is missing.
func listTable(t *testing.T, ns string) string {
	t.Helper()
	out, err := nsRunner{ns}.Run(context.Background(), "", "nft", "list", "table", "inet", Table)
	if err != nil {
		return ""
	}
	return counters.ReplaceAllString(string(out), "counter packets 0 bytes 0")
}

// reference loads text into a fresh namespace and lists it: what the
// installed table must look like.
func reference(t *testing.T, text string) string {
	t.Helper()
	var b [3]byte
	rand.Read(b[:])
	ns := "alxn-r-" + hex.EncodeToString(b[:])
	netnstest.Exec(t, "ip", "netns", "add", ns)
	defer exec.Command("ip", "netns", "del", ns).Run()
	if _, err := (nsRunner{ns}).Run(context.Background(), text, "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	return listTable(t, ns)
}

func e2eInput(outbound OutboundType) Input {
	in := Input{
		Config: Config{
			OutboundType: outbound, ArtifactSource: SourceCache,
			Registry: Addresses{"198.18.61.1:5000"}, Gateway: Addresses{"198.18.61.1"}, DNS: Addresses{"198.18.61.1:53"},
			AllowedAddresses: []string{"198.18.65.0/24", "fdaa:61::/64"},
		},
		CacheRules: []CacheRule{{SourceRepo: "mcr.microsoft.com/*", TargetRepo: "aks-managed-repository/*"}},
	}
	in.Config.SetDefaults()
	in.Config.SandboxImage = "mcr.microsoft.com/oss/kubernetes/pause:3.6" // a cache rule covers it
	return in
}

func TestE2ENodeBlock(t *testing.T) {
	tp := newTopo(t)
	ctx := context.Background()
	root := t.TempDir()
	writeE2E(t, root, "etc/resolv.conf", "nameserver 192.0.2.53\n")
	before := snapshot(t, root)

	open := []reach{
		{tp.node, "198.18.62.10:443", false}, // default route leads nowhere yet
		{tp.node, "[fdaa:62::10]:443", true},
		{tp.pod, "198.18.64.10:443", true},
		{tp.node, "198.18.61.1:5000", true},
	}
	checkReach(t, "before apply", open)

	n := New(root, nsRunner{tp.node}, nil)
	res, err := n.Apply(ctx, e2eInput(OutboundBlock))
	if err != nil {
		t.Fatalf("Apply(block): %v", err)
	}
	t.Logf("apply: %q", res.Changes)
	want := reference(t, res.Plan.Ruleset)
	got := listTable(t, tp.node)
	if got == "" || got != want {
		t.Fatalf("nft list table after apply =\n%s\nwant\n%s", got, want)
	}
	checkReach(t, "block", []reach{
		{tp.node, "198.18.61.1:5000", true},   // the registry
		{tp.node, "198.18.61.1:443", false},   // the registry's host, another port
		{tp.node, "[fdaa:62::10]:443", false}, // IPv6 outside allowedAddresses
		{tp.node, "[fdaa:61::1]:443", true},   // IPv6 inside allowedAddresses
		{tp.pod, "198.18.64.10:443", false},   // forwarded for a pod
		{tp.pod, "198.18.61.1:5000", true},    // a pod reaches the registry
		{tp.node, "127.0.0.1:1", false},       // loopback is accepted: refused, not dropped (quick either way)
	})

	res, err = n.Apply(ctx, e2eInput(OutboundBlock))
	if err != nil || len(res.Changes) != 0 {
		t.Errorf("second Apply = %q %v, want no change", res.Changes, err)
	}
	if got := listTable(t, tp.node); got != want {
		t.Errorf("table after the second apply =\n%s\nwant\n%s", got, want)
	}
	if st, err := n.Status(ctx); err != nil || len(st.Drift) != 0 || st.LiveRuleCounts["egress"] != res.State.RuleCounts["egress"] {
		t.Errorf("Status = %+v %v, want no drift", st, err)
	}

	// Fault injection: a failing rename after the firewall was loaded
	// rolls the firewall back; a blocked certs.d fails before anything.
	changed := e2eInput(OutboundBlock)
	changed.Config.AllowedAddresses = append(changed.Config.AllowedAddresses, "198.18.64.0/24")
	changed.CacheRules = append(changed.CacheRules, CacheRule{SourceRepo: "quay.io/*", TargetRepo: "quay/*"})
	files := snapshot(t, root)
	n.rename = func(o, p string) error {
		if strings.HasSuffix(p, "hosts.toml") {
			return errors.New("injected rename failure")
		}
		return os.Rename(o, p)
	}
	if _, err := n.Apply(ctx, changed); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Errorf("Apply with a failing rename = %v, want a rolled-back error", err)
	}
	n.rename = os.Rename
	if got := listTable(t, tp.node); got != want {
		t.Errorf("table after the failed apply =\n%s\nwant the previous\n%s", got, want)
	}
	writeE2E(t, root, "etc/containerd/certs.d/quay.io", "in the way")
	if _, err := n.Apply(ctx, changed); err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("Apply with certs.d blocked = %v, want nothing changed", err)
	}
	os.Remove(filepath.Join(root, "etc/containerd/certs.d/quay.io"))
	if got := listTable(t, tp.node); got != want {
		t.Errorf("table after the blocked apply =\n%s\nwant the previous\n%s", got, want)
	}
	checkDiff(t, "files after the failed applies", files, snapshot(t, root))
	checkReach(t, "after failed applies", []reach{{tp.pod, "198.18.64.10:443", false}})

	// Behind airlock's back: the whole ruleset flushed, a file deleted.
	netnstest.Exec(t, "ip", "netns", "exec", tp.node, "nft", "flush", "ruleset")
	os.Remove(filepath.Join(root, "etc/containerd/certs.d/mcr.microsoft.com/hosts.toml"))
	st, err := n.Status(ctx)
	if err != nil || len(st.Drift) != 2 {
		t.Errorf("Status after flush and delete = %q %v, want 2 drifts", st.Drift, err)
	}
	if _, err := n.Reset(ctx); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	checkDiff(t, "files after reset", before, snapshot(t, root))
	if got := listTable(t, tp.node); got != "" {
		t.Errorf("table after reset:\n%s", got)
	}
	checkReach(t, "after reset", open)
}

func TestE2ENodeUserDefinedRouting(t *testing.T) {
	tp := newTopo(t)
	ctx := context.Background()
	root := t.TempDir()
	n := New(root, nsRunner{tp.node}, nil)
	in := e2eInput(OutboundUserDefinedRouting)
	res, err := n.Apply(ctx, in)
	if err != nil {
		t.Fatalf("Apply(userDefinedRouting): %v", err)
	}
	t.Logf("apply: %q", res.Changes)
	if got, want := listTable(t, tp.node), reference(t, res.Plan.Ruleset); got != want {
		t.Errorf("nft list table =\n%s\nwant\n%s", got, want)
	}
	out, _ := nsRunner{tp.node}.Run(ctx, "", "ip", "route", "show", "default")
	if !strings.Contains(string(out), "via 198.18.61.1") {
		t.Errorf("default route after apply = %q, want via 198.18.61.1", out)
	}
	// Next hop 198.18.61.1 (the default route) leaves; next hop
	// 198.18.61.5 (a route for 198.18.64.0/24) is dropped; from the node
	// (output) and from the pod (forward).
	checkReach(t, "userDefinedRouting", []reach{
		{tp.node, "198.18.62.10:443", true},
		{tp.node, "198.18.64.10:443", false},
		{tp.pod, "198.18.62.10:443", true},
		{tp.pod, "198.18.64.10:443", false},
		{tp.node, "[fdaa:62::10]:443", false}, // v6 next hop is not the (v4) gateway
	})
	if res, err := n.Apply(ctx, in); err != nil || len(res.Changes) != 0 {
		t.Errorf("second Apply = %v %v, want no change", res, err)
	}
	if _, err := n.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	out, _ = nsRunner{tp.node}.Run(ctx, "", "ip", "route", "show", "default")
	if !strings.Contains(string(out), "via 198.18.61.254") {
		t.Errorf("default route after reset = %q, want the original via 198.18.61.254", out)
	}
	checkReach(t, "after reset", []reach{{tp.pod, "198.18.64.10:443", true}, {tp.node, "198.18.62.10:443", false}})
}

func writeE2E(t *testing.T, root, path, content string) { write(t, root, path, content) }

func checkDiff(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected %s", what, k)
		}
	}
}
