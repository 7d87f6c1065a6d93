//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// TestE2EServeDNSGatewayFQDNNetworkRule runs DNS and the gateway in one
// `airlock serve` on the gateway host of the isolation rig, with `airlock
// gateway rules` intercepting the node's forwarded traffic. A UDP network
// rule names ntp.test by FQDN: the node reaches exactly the address airlock
// DNS answered for it, only after it was resolved, only on port 123, and no
// longer once the observation has expired (TTL plus grace).
func TestE2EServeDNSGatewayFQDNNetworkRule(t *testing.T) {
	r := newIsolationRig(t)
	startUnboundIn(t, r.inet, inetResolver, []string{
		"ntp.test. 2 IN A " + inetNTP, // short TTL: the observation expires during the test
		"allowed.test. 300 IN A " + inetAllowed,
	})
	udpEchoIn(t, r.inet, inetNTP+":123", "ntp")
	udpEchoIn(t, r.inet, inetNTP+":124", "ntp-124")
	udpEchoIn(t, r.inet, inetNTP2+":123", "ntp2")

	admin := rigGwAddr + ":9090"
	cfg := filepath.Join(r.dir, "airlock.yaml")
	writeFile(t, cfg, fmt.Sprintf(`version: 1
log: { format: json, level: info }
admin: { listen: %q }
registry: { listen: "", storage: { path: %q } }
dns:
  listen: "0.0.0.0:53"
  forwarders: [ "%s:53" ]
  observationGrace: 1s
  logAllowed: all
gateway:
  transparentListen: "0.0.0.0:15001"
  l4Listen: "0.0.0.0:15002"
  udpIdleTimeout: 1s                # a UDP flow's record is written when it ends
  allowedInternalRanges: [ "198.19.0.0/16" ]
policy:
  ruleCollectionGroups:
    - name: g
      priority: 100
      ruleCollections:
        - name: net
          type: network
          priority: 100
          action: allow
          rules:
            - { name: time, protocols: [UDP], sourceAddresses: ["198.18.0.0/15"], destinationFqdns: [ntp.test], destinationPorts: ["123"] }
        - name: app
          type: application
          priority: 200
          action: allow
          rules:
            - { name: web, protocols: ["https:443"], sourceAddresses: ["*"], targetFqdns: [allowed.test] }
`, admin, filepath.Join(r.dir, "registry"), inetResolver))
	if out, code := runIn(r.gw, 30*time.Second, needAirlock(t), "gateway", "rules", "--config", cfg); code != 0 {
		t.Fatalf("airlock gateway rules: exit %d\n%s", code, out)
	}
	p := startAirlockIn(t, r.gw, cfg, admin)

	dnsServer := rigGwAddr + ":53"
	probe := func(dst string) string { return udpProbe(t, r.node, dst, 1500*time.Millisecond) }

	// Before any lookup the address is not bound to ntp.test: denied.
	if got := probe(inetNTP + ":123"); got != "" {
		t.Errorf("udp to %s:123 before resolving ntp.test answered %q, want no answer", inetNTP, got)
	}
	addrs := lookupA(t, r.node, dnsServer, "ntp.test.")
	if len(addrs) != 1 || addrs[0] != inetNTP {
		t.Fatalf("airlock DNS: ntp.test A = %v, want [%s]", addrs, inetNTP)
	}
	if got := probe(inetNTP + ":123"); !strings.HasPrefix(got, "ntp:") {
		t.Errorf("udp to %s:123 after resolving ntp.test answered %q, want the ntp echo", inetNTP, got)
	}
	if got := probe(inetNTP2 + ":123"); got != "" {
		t.Errorf("udp to %s:123 (never resolved) answered %q, want no answer", inetNTP2, got)
	}
	if got := probe(inetNTP + ":124"); got != "" {
		t.Errorf("udp to %s:124 (port not in the rule) answered %q, want no answer", inetNTP, got)
	}
	// TTL 2 s + grace 1 s: after 4 s the binding is gone and a new flow is denied.
	time.Sleep(4 * time.Second)
	if got := probe(inetNTP + ":123"); got != "" {
		t.Errorf("udp to %s:123 after the observation expired answered %q, want no answer", inetNTP, got)
	}

	// The decision records say why (a UDP flow's record comes at its end).
	time.Sleep(1500 * time.Millisecond)
	recs := airlockRecords(t, p.logPath)
	// Count flows by client socket: a denied flow that keeps sending past
	// udpIdleTimeout is recorded again.
	allowed, denied := map[any]bool{}, map[any]bool{}
	for _, rec := range recs {
		if rec["msg"] != "egress decision" || rec["proto"] != "udp" || (rec["dst"] != inetNTP && rec["dst"] != inetNTP+":123") || rec["port"] != float64(123) {
			continue
		}
		switch rec["verdict"] {
		case "allow":
			allowed[rec["src"]] = true
			if rec["rule"] != "time" || rec["bytes_down"] == float64(0) {
				t.Errorf("allowed udp record: rule %v, bytes_down %v; want rule time and the echo's bytes: %v", rec["rule"], rec["bytes_down"], rec)
			}
		case "deny":
			denied[rec["src"]] = true
		}
	}
	if len(allowed) != 1 || len(denied) != 2 {
		t.Errorf("udp flows to %s:123: %d allowed, %d denied; want 1 allowed (after resolving) and 2 denied (before, after expiry)\n%v", inetNTP, len(allowed), len(denied), recs)
	}
}

// udpProbe sends one datagram from a fresh socket in ns to dst and returns
// the first answer, or "" when none came within wait.
func udpProbe(t testing.TB, ns, dst string, wait time.Duration) string {
	t.Helper()
	var c net.Conn
	var err error
	netnstest.Do(t, ns, func() { c, err = net.Dial("udp", dst) })
	if err != nil {
		t.Fatalf("udp dial %s in %s: %v", dst, ns, err)
	}
	defer c.Close()
	buf := make([]byte, 512)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if _, err := c.Write([]byte("probe")); err != nil {
			return ""
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n])
		}
	}
	return ""
}

// lookupA asks server (from ns) for name's A records.
func lookupA(t testing.TB, ns, server, name string) []string {
	t.Helper()
	var out []string
	for _, rr := range exchangeA(t, ns, server, name).Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// exchangeA sends server (from ns) a question for name's A records and
// returns the answer; no answer fails the test.
func exchangeA(t testing.TB, ns, server, name string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	var resp *dns.Msg
	var err error
	netnstest.Do(t, ns, func() {
		c := &dns.Client{Timeout: 2 * time.Second}
		resp, _, err = c.Exchange(m, server)
	})
	if err != nil {
		t.Fatalf("dns %s A via %s from %s: %v", name, server, ns, err)
	}
	return resp
}

// airlockRecords returns airlock's JSON log lines that are decision
// records (they carry a verdict).
func airlockRecords(t testing.TB, logPath string) []map[string]any {
	t.Helper()
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["verdict"] != nil {
			out = append(out, m)
		}
	}
	return out
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
