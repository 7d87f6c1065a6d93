//go:build e2e

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// inetOffLink6 is verify.targets.offLinkIPv6 on the isolation rig: an
// address on inet's loopback, routed from the node through gw, where
// `airlock verify --reflect-icmpv6` answers.
const inetOffLink6 = "fdaa:19::66"

// icmpv6Witness is a raw ICMPv6 socket in a namespace that records every
// verify probe arriving there (marker "airlock-verify-icmpv6/", probe
// flag '?'): the far side's own view, independent of verify's report.
type icmpv6Witness struct {
	mu  sync.Mutex
	got map[string][]int // source address → types
}

func newICMPv6Witness(t *testing.T, ns string) *icmpv6Witness {
	t.Helper()
	w := &icmpv6Witness{got: map[string][]int{}}
	fd := netnstest.RawICMPv6(t, ns)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return
			}
			sa, ok := from.(*unix.SockaddrInet6)
			if !ok || n < 5 || buf[n-1] != '?' || !bytes.Contains(buf[:n], []byte("airlock-verify-icmpv6/")) {
				continue
			}
			src := netip.AddrFrom16(sa.Addr).String()
			w.mu.Lock()
			w.got[src] = append(w.got[src], int(buf[0]))
			w.mu.Unlock()
		}
	}()
	return w
}

// take returns what arrived since the last call, by source, types sorted.
func (w *icmpv6Witness) take() map[string][]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.got
	w.got = map[string][]int{}
	for _, v := range out {
		sort.Ints(v)
	}
	return out
}

// preFixRuleset is the ruleset `airlock node apply` wrote for this node
// before issue 10 (commit 451cd3e), with the metadata address in
// node.allowedAddresses as docs/node.md then advised: one egress chain
// for the output and forward hooks, neighbour discovery accepted to any
// destination.
const preFixRuleset = `table inet airlock_node
delete table inet airlock_node
table inet airlock_node {
	set allowed_v4 {
		type ipv4_addr; flags interval; auto-merge; elements = { 169.254.169.254/32, 198.18.20.0/24 }
	}
	set allowed_v6 {
		type ipv6_addr; flags interval; auto-merge; elements = { fdaa:20::/64 }
	}
	chain output {
		type filter hook output priority filter; policy drop;
		oifname "lo" accept comment "loopback"
		jump egress
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		jump egress
	}
	chain egress {
		ct state established,related accept comment "replies and flows already allowed"
		ct state invalid counter drop comment "not part of any flow"
		icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept comment "IPv6 neighbour discovery"
		ip daddr @allowed_v4 accept comment "node.allowedAddresses"
		ip6 daddr @allowed_v6 accept comment "node.allowedAddresses"
		ip daddr 198.18.21.1 tcp dport 5000 accept comment "airlock registry (node.registry)"
		ip daddr 198.18.21.1 meta l4proto { tcp, udp } th dport 53 accept comment "airlock DNS (node.dns)"
		counter drop comment "everything else, IPv4 and IPv6"
	}
}
`

// TestE2EIsolatedICMPv6AndLinkLocal is issue 10, points 1 and 2, on the
// isolation rig with the built binary. inet runs `airlock verify
// --reflect-icmpv6` on offLinkIPv6 and the metadata stand-in on
// 169.254.169.254; a raw socket in inet witnesses what arrives. The node's
// config gives the metadata address to the node only
// (node.hostAllowedAddresses).
//
// With the ruleset airlock wrote before the fix, verify from the node and
// from a pod reports the three neighbour discovery rows as leaks (the
// witness saw the probes arrive from both), and from the pod the metadata
// row too. With `airlock node apply`: no leak from either; the node
// reaches the metadata address (a positive check), the pod does not.
func TestE2EIsolatedICMPv6AndLinkLocal(t *testing.T) {
	skipUnlessAirlock(t)
	r := newIsolationRig(t)
	netnstest.Exec(t, "ip", "-n", r.inet, "addr", "add", inetOffLink6+"/128", "dev", "lo", "nodad")
	webIn(t, r.inet, inetMetadata, "metadata")
	witness := newICMPv6Witness(t, r.inet)

	root := filepath.Join(r.dir, "node-root")
	writeFile(t, mkdirFor(t, filepath.Join(root, "etc/resolv.conf")), "nameserver 198.18.21.99\n")
	cfg := filepath.Join(r.dir, "airlock.yaml")
	writeFile(t, cfg, fmt.Sprintf(`version: 1
log: { format: text, level: info }
node:
  root: %q
  outboundType: block
  artifactSource: Direct
  resolver: none
  registry: "%[2]s:5000"
  dns: "%[2]s:53"
  allowedAddresses: [ "198.18.20.0/24", "fdaa:20::/64" ]
  hostAllowedAddresses: [ %[3]q ]
verify:
  targets:
    offLinkIPv6: %[4]q
    metadataAddress: "%[3]s:80"
`, root, rigGwAddr, inetMetadata, inetOffLink6))

	bin := needAirlock(t)
	refl := startProcess(t, "reflector", filepath.Join(r.dir, "reflector.log"), "ip", "netns", "exec", r.inet, bin, "verify", "--reflect-icmpv6", "--config", cfg)
	t.Cleanup(func() {
		if killed, err := refl.stop(10 * time.Second); killed || err != nil {
			t.Errorf("reflector (pid %d) stop: killed=%v err=%v", refl.pid(), killed, err)
		}
		t.Logf("reflector log:\n%s", refl.logTail(40))
	})
	if err := waitFor(refl, 20*time.Second, func() bool {
		b, _ := os.ReadFile(refl.logPath)
		return bytes.Contains(b, []byte("answering airlock verify's ICMPv6 probes"))
	}); err != nil {
		t.Fatalf("reflector in %s: %v\n%s", r.inet, err, refl.logTail(20))
	}

	// verify runs from the node, or from the pod with --netns; the table
	// goes to the log, the rows come from --json.
	verifyRows := func(t *testing.T, pod bool) (int, map[string]map[string]any) {
		t.Helper()
		args := []string{bin, "verify", "--config", cfg, "--timeout", "1s"}
		from := "node"
		if pod {
			args = append(args, "--netns", r.pod)
			from = "pod"
		}
		table, code := runIn(r.node, time.Minute, args...)
		t.Logf("airlock verify from the %s → exit %d\n%s", from, code, table)
		out, jcode := runIn(r.node, time.Minute, append(args, "--json")...)
		if jcode != code {
			t.Errorf("verify --json from the %s exit %d, the table run %d", from, jcode, code)
		}
		rows := map[string]map[string]any{}
		for _, row := range parseVerifyRows(t, out) {
			rows[fmt.Sprint(row["channel"])] = row
		}
		return code, rows
	}
	// Warm the IPv6 path before any rule is loaded: neighbours resolved
	// both ways on every link, link-local addresses past duplicate address
	// detection, so a probe's answer is not held up behind that.
	for _, ns := range []string{r.node, r.pod} {
		var err error
		netnstest.Do(t, ns, func() {
			var c net.Conn
			if c, err = net.DialTimeout("tcp", "["+inetOffLink6+"]:9", 10*time.Second); err == nil {
				c.Close()
			}
		})
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("warming the path from %s to %s: %v, want connection refused (inet answers)", ns, inetOffLink6, err)
		}
	}
	nodeAddr6, podAddr6 := "fdaa:21::2", "fdaa:20::2"
	ndRows := []string{"icmpv6-nd-neighbor-advert", "icmpv6-nd-neighbor-solicit", "icmpv6-nd-router-solicit"}

	t.Run("pre-fix ruleset: verify reports the leaks", func(t *testing.T) {
		cmd := []string{"ip", "netns", "exec", r.node, "nft", "-f", filepath.Join(r.dir, "pre-fix.nft")}
		writeFile(t, cmd[len(cmd)-1], preFixRuleset)
		netnstest.Exec(t, cmd...)
		witness.take()
		code, rows := verifyRows(t, false)
		if l := leakedRows(rows); code != 1 || !slices.Equal(l, ndRows) {
			t.Errorf("verify from the node: exit %d, leaks %v; want exit 1 and %v", code, l, ndRows)
		}
		code, rows = verifyRows(t, true)
		if l, want := leakedRows(rows), append(slices.Clone(ndRows), "metadata"); code != 1 || !slices.Equal(l, want) {
			t.Errorf("verify from the pod: exit %d, leaks %v; want exit 1 and %v", code, l, want)
		}
		arrived := witness.take()
		t.Logf("probes that arrived in inet, by source: %v", arrived)
		for _, src := range []string{nodeAddr6, podAddr6} {
			if types := slices.Compact(arrived[src]); !slices.Equal(types, []int{133, 135, 136}) {
				t.Errorf("probes from %s that arrived in inet: types %v, want 133, 135 and 136 (each verify run sends each type once)", src, types)
			}
		}
	})

	t.Run("airlock node apply: no leak, metadata for the node only", func(t *testing.T) {
		out, code := runIn(r.node, time.Minute, bin, "node", "apply", "--config", cfg)
		t.Logf("airlock node apply → exit %d\n%s", code, out)
		if code != 0 {
			t.Fatalf("airlock node apply: exit %d", code)
		}
		witness.take()
		code, rows := verifyRows(t, false)
		if l := leakedRows(rows); code != 0 || len(l) != 0 {
			t.Errorf("verify from the node: exit %d, leaks %v; want exit 0 and none", code, l)
		}
		if m := rows["metadata"]; m["expected"] != "reachable" || m["got"] != "reachable" {
			t.Errorf("verify from the node: metadata row %v, want a positive check that passed (node.hostAllowedAddresses)", m)
		}
		code, rows = verifyRows(t, true)
		if l := leakedRows(rows); code != 0 || len(l) != 0 {
			t.Errorf("verify from the pod: exit %d, leaks %v; want exit 0 and none", code, l)
		}
		if m := rows["metadata"]; m["expected"] != "blocked" || m["got"] != "blocked" {
			t.Errorf("verify from the pod: metadata row %v, want blocked", m)
		}
		for _, k := range append(slices.Clone(ndRows), "icmpv6-mld-report", "icmpv6-echo", "icmpv6-unassigned") {
			if got := rows[k]["got"]; got != "blocked" {
				t.Errorf("verify from the pod: %s = %v (%v), want blocked", k, got, rows[k]["evidence"])
			}
		}
		if arrived := witness.take(); len(arrived) != 0 {
			t.Errorf("probes arrived in inet after apply: %v, want none", arrived)
		}
		if out, code := runIn(r.node, time.Minute, bin, "node", "reset", "--config", cfg); code != 0 {
			t.Errorf("airlock node reset: exit %d\n%s", code, out)
		}
	})
}

// leakedRows lists the channels whose row is a leak, sorted.
func leakedRows(rows map[string]map[string]any) []string {
	var out []string
	for ch, r := range rows {
		if g, _ := r["got"].(string); strings.EqualFold(g, "leak") {
			out = append(out, ch)
		}
	}
	sort.Strings(out)
	return out
}
