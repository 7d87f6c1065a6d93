//go:build e2e

package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// TestNodeAgentRepairsDriftE2E runs `airlock node agent` (the binary) in a
// network namespace on the real nft, with a temporary root: a deleted
// rule, an edited hosts.toml, a deleted table and a rule replaced by
// another are each restored and
// counted in /metrics, /readyz is 200 again, SIGTERM leaves the node
// isolated, and `airlock node reset` (the uninstall hook) then removes the
// table and restores the files.
func TestNodeAgentRepairsDriftE2E(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and nftables")
	}
	for _, bin := range []string{"nft", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (scripts/deps.sh installs nftables and iproute2)", bin)
		}
	}
	bin := needAirlock(t)
	var b [3]byte
	rand.Read(b[:])
	ns := "alag-" + hex.EncodeToString(b[:])
	netnstest.Add(t, ns)
	netnstest.Exec(t, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	netnstest.Exec(t, "ip", "-n", ns, "addr", "add", "198.18.70.2/24", "dev", "eth0")
	netnstest.Exec(t, "ip", "-n", ns, "link", "set", "eth0", "up")

	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "etc/resolv.conf"), "search example.internal\nnameserver 192.0.2.53\n")
	before := tree(t, root)
	cfg := filepath.Join(dir, "airlock.yaml")
	writeFile(t, cfg, fmt.Sprintf(`version: 1
log: { format: json, level: info }
registry:
  cacheRules:
    - { name: aks-managed-mcr, sourceRepo: "mcr.microsoft.com/*", targetRepo: "aks-managed-repository/*" }
node:
  root: %q
  outboundType: block
  artifactSource: Cache
  runtimes: [ containerd ]
  sandboxImage: mcr.microsoft.com/oss/kubernetes/pause:3.6
  registry: "198.18.70.1:5000"
  dns: "198.18.70.1:53"
  allowedAddresses: [ "198.18.70.0/24" ]
  agent: { listen: "127.0.0.1:9091", interval: 30s }
`, root))

	// --interval overrides node.agent.interval: a short one for the test.
	agentLog := filepath.Join(dir, "agent.log")
	p := startProcess(t, "node agent", agentLog, "ip", "netns", "exec", ns, bin, "node", "agent", "--config", cfg, "--interval", "300ms")
	stopped := false
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node agent log (last lines):\n%s", p.logTail(60))
		}
		if !stopped {
			p.stop(15 * time.Second)
		}
	})
	const admin = "127.0.0.1:9091" // inside ns
	readyz := func() bool { code, _ := httpIn(ns, admin, "/readyz"); return code == 200 }
	if err := waitFor(p, time.Minute, readyz); err != nil {
		t.Fatalf("node agent: %v\n%s", err, p.logTail(40))
	}
	hosts := filepath.Join(root, "etc/containerd/certs.d/mcr.microsoft.com/hosts.toml")
	wantHosts := readFile(t, hosts)
	wantTable := nftTable(t, ns)
	if wantTable == "" {
		t.Fatal("no table inet airlock_node after the agent's first apply")
	}
	t.Logf("ready; metrics:\n%s", agentLines(agentMetrics(t, ns, admin)))

	// wait waits (a minute at most) until the agent counted want repairs
	// of what and the node is back as applied.
	wait := func(step, what string, want float64, back func() bool) {
		t.Helper()
		err := waitFor(p, time.Minute, func() bool {
			return metricValue(agentMetrics(t, ns, admin), `airlock_node_agent_drift_repaired_total{what="`+what+`"}`) >= want && back()
		})
		if err != nil {
			t.Fatalf("%s: %v\nmetrics:\n%s", step, err, agentLines(agentMetrics(t, ns, admin)))
		}
		if err := waitFor(p, time.Minute, readyz); err != nil {
			t.Fatalf("%s: /readyz: %v", step, err)
		}
		t.Logf("%s: repaired (drift_repaired_total{what=%q} >= %v), /readyz 200", step, what, want)
	}
	tableBack := func() bool { return nftTable(t, ns) == wantTable }

	// 1. One rule deleted (by its handle).
	h := ruleHandle(t, ns, "egress")
	netnstest.Exec(t, "ip", "netns", "exec", ns, "nft", "delete", "rule", "inet", "airlock_node", "egress", "handle", h)
	if nftTable(t, ns) == wantTable {
		t.Fatal("deleting a rule did not change the table")
	}
	wait("rule deleted", "ruleset", 1, tableBack)

	// 2. hosts.toml edited to name the upstream: a fallback to the internet.
	writeFile(t, hosts, "server = \"https://mcr.microsoft.com\"\n")
	wait("hosts.toml edited", "file", 1, func() bool { return readFile(t, hosts) == wantHosts })

	// 3. The whole table deleted.
	netnstest.Exec(t, "ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "airlock_node")
	wait("table deleted", "ruleset", 2, tableBack)

	// 4. A rule replaced by "accept": the rule counts stay, the listing
	// does not (an escape `node status` would not see).
	h = ruleHandle(t, ns, "egress")
	netnstest.Exec(t, "ip", "netns", "exec", ns, "nft", "replace", "rule", "inet", "airlock_node", "egress", "handle", h, "accept")
	wait("rule replaced, same counts", "ruleset", 3, tableBack)

	m := agentMetrics(t, ns, admin)
	for _, line := range []string{`airlock_node_agent_applies_total{result="ok"}`, `airlock_node_agent_applies_total{result="error"}`,
		`airlock_node_agent_drift_repaired_total{what="ruleset"}`, `airlock_node_agent_drift_repaired_total{what="file"}`,
		`airlock_node_agent_converged`, `airlock_node_agent_last_apply_timestamp_seconds`} {
		t.Logf("%s %v", line, metricValue(m, line))
	}
	// One repair per drift: a check that saw drift where there was none
	// (an unstable listing) would count more.
	for series, want := range map[string]float64{
		`airlock_node_agent_applies_total{result="ok"}`:           5,
		`airlock_node_agent_drift_repaired_total{what="ruleset"}`: 3,
		`airlock_node_agent_drift_repaired_total{what="file"}`:    1,
	} {
		if got := metricValue(m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if got := metricValue(m, `airlock_node_agent_converged`); got != 1 {
		t.Errorf("converged = %v, want 1", got)
	}
	logText := readFile(t, agentLog)
	for _, want := range []string{`"msg":"node agent: drift repaired","component":"node-agent","what":"ruleset"`,
		`"msg":"node agent: drift repaired","component":"node-agent","what":"file","path":"/etc/containerd/certs.d/mcr.microsoft.com/hosts.toml"`} {
		if !strings.Contains(logText, want) {
			t.Errorf("agent log lacks %s", want)
		}
	}

	// SIGTERM: the agent stops cleanly and the node stays isolated.
	stopped = true
	if killed, err := p.stop(15 * time.Second); killed || err != nil {
		t.Fatalf("node agent stop: killed=%v err=%v", killed, err)
	}
	if nftTable(t, ns) != wantTable || readFile(t, hosts) != wantHosts {
		t.Fatal("the node changed when the agent stopped: isolation must stay until airlock node reset")
	}
	t.Log("SIGTERM: exit 0, table and hosts.toml left as applied")

	// The uninstall hook: airlock node reset.
	out, code := runIn(ns, time.Minute, bin, "node", "reset", "--config", cfg)
	t.Logf("airlock node reset → exit %d\n%s", code, out)
	if code != 0 {
		t.Fatalf("airlock node reset: exit %d", code)
	}
	if got := nftTable(t, ns); got != "" {
		t.Errorf("table after reset:\n%s", got)
	}
	after := tree(t, root)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("after reset: %s = %q, want %q", k, after[k], v)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("after reset: unexpected %s", k)
		}
	}
}

// httpIn makes one GET of path on addr from inside ns (net/http dials on
// goroutines of its own, outside ns) and returns the status code and body;
// 0 when it could not connect.
func httpIn(ns, addr, path string) (int, string) {
	code, body := 0, ""
	netnstest.Run(ns, func() {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: airlock\r\nConnection: close\r\n\r\n", path)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		code, body = resp.StatusCode, string(b)
	})
	return code, body
}

func agentMetrics(t *testing.T, ns, addr string) string {
	t.Helper()
	_, body := httpIn(ns, addr, "/metrics")
	return body
}

// agentLines are the airlock_node_agent_* samples of metrics.
func agentLines(metrics string) string {
	var out []string
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "airlock_node_agent_") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// metricValue is the value of the sample named series ("name{labels}");
// -1 when it is missing.
func metricValue(metrics, series string) float64 {
	for _, line := range strings.Split(metrics, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

var nftCounter = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// nftTable is airlock's table in ns as nft lists it, counters zeroed; ""
// when it is missing.
func nftTable(t *testing.T, ns string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "airlock_node").Output()
	if err != nil {
		return ""
	}
	return nftCounter.ReplaceAllString(string(out), "counter packets 0 bytes 0")
}

// ruleHandle is the handle of the first rule of chain in airlock's table.
func ruleHandle(t *testing.T, ns, chain string) string {
	t.Helper()
	out := netnstest.Exec(t, "ip", "netns", "exec", ns, "nft", "-a", "list", "chain", "inet", "airlock_node", chain)
	m := regexp.MustCompile(`(?m)^\t\t\S.* # handle (\d+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no rule with a handle in chain %s:\n%s", chain, out)
	}
	return m[1]
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// tree maps every file and directory under root to its content ("" for
// directories, marked by a trailing slash).
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			m[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(p)
		m[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
