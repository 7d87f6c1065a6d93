//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/testkit/dnstest"
	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// Addresses of the round trip's servers, on inet's loopback (isolation
// rig). Names are answered by a miekg/dns forwarder inside inet at
// inetResolver: nothing is ever asked of the real DNS.
var learnNames = map[string]string{
	"a.svc.test":      "198.19.0.31", // HTTPS, transparent
	"b.svc.test":      "198.19.0.32", // HTTPS, explicit proxy (CONNECT)
	"c.svc.test":      "198.19.0.33", // HTTPS, transparent
	"solo.other.test": "198.19.0.34", // HTTP, transparent
	"d.svc.test":      "198.19.0.35", // never used while learning; under the collapsed *.svc.test
	"x.other.test":    "198.19.0.36", // never used while learning; sibling of solo.other.test
}

const learnTCPService = "198.19.0.40:5432" // a TCP echo reached by address only (CONNECT): a network rule

// TestE2ELearnRoundTrip is issue 14's round trip through the real gateway
// and DNS in network namespaces: airlock serve with gateway.mode and
// dns.mode report and an empty (deny-all) policy sees the node's traffic
// (names resolved through airlock DNS; HTTPS and HTTP intercepted by the
// transparent listener; CONNECT through the explicit proxy, one of them to
// an address with no name); `airlock policy learn` turns the log into a
// policy; airlock serve restarted in enforce mode with that policy lets
// the same traffic through with no deny, while a name never seen in
// another registrable domain (x.other.test, a sibling of the learned
// solo.other.test) is denied by DNS and by the gateway. a, b and c share
// the registrable domain svc.test: with --threshold 3 they collapse to
// *.svc.test, so d.svc.test, never seen, is allowed (by design).
func TestE2ELearnRoundTrip(t *testing.T) {
	r := newIsolationRig(t)
	bin := needAirlock(t)
	for _, ip := range learnNames {
		netnstest.Exec(t, "ip", "-n", r.inet, "addr", "add", ip+"/32", "dev", "lo")
	}
	tcpHost, _, _ := net.SplitHostPort(learnTCPService)
	netnstest.Exec(t, "ip", "-n", r.inet, "addr", "add", tcpHost+"/32", "dev", "lo")
	for name, ip := range learnNames {
		webIn(t, r.inet, ip, name)
	}
	tcpEchoIn(t, r.inet, learnTCPService)
	forwarderIn(t, r.inet, inetResolver+":53", learnNames)

	// Round 1: report mode, no policy.
	admin := rigGwAddr + ":9090"
	proxy := rigGwAddr + ":3128"
	base := func(mode string) string {
		return fmt.Sprintf(`version: 1
log: { format: json, level: info }
admin: { listen: %q }
registry: { listen: "", storage: { path: %q } }
dns:
  listen: "0.0.0.0:53"
  mode: %s
  forwarders: [ "%s:53" ]
  logAllowed: all
gateway:
  mode: %s
  proxyListen: %q
  transparentListen: "0.0.0.0:15001"
  allowedInternalRanges: [ "198.19.0.0/16" ]
`, admin, filepath.Join(r.dir, "registry"), mode, inetResolver, mode, proxy)
	}
	reportCfg := filepath.Join(r.dir, "report.yaml")
	writeFile(t, reportCfg, base("report"))
	if out, code := runIn(r.gw, 30*time.Second, bin, "gateway", "rules", "--config", reportCfg); code != 0 {
		t.Fatalf("airlock gateway rules: exit %d\n%s", code, out)
	}
	p1 := startAirlockIn(t, r.gw, reportCfg, admin)
	learnTraffic(t, r, proxy)
	// 4 names asked of DNS, 5 flows: every one a would-be deny.
	waitRecords(t, p1.logPath, func(recs []map[string]any) bool {
		dnsN, gwN := 0, 0
		for _, rec := range recs {
			if rec["would_deny"] != true || rec["mode"] != "report" {
				continue
			}
			switch rec["msg"] {
			case "dns decision":
				dnsN++
			case "egress decision":
				gwN++
			}
		}
		return dnsN >= 4 && gwN >= 5
	})
	if killed, err := p1.stop(15 * time.Second); killed || err != nil {
		t.Fatalf("airlock (report) stop: killed=%v err=%v", killed, err)
	}

	// Learn.
	learned := filepath.Join(r.dir, "learned.yaml")
	cmd := exec.Command(bin, "policy", "learn", "--from", p1.logPath, "--threshold", "3",
		"--sources", "nodes=198.18.21.0/24", "--output", learned)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("airlock policy learn: %v\n%s\nlog:\n%s", err, out, p1.logTail(40))
	}
	proposal, err := os.ReadFile(learned)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("learned policy:\n%s", proposal)
	for _, want := range []string{"*.svc.test", "solo.other.test", tcpHost} {
		if !strings.Contains(string(proposal), want) {
			t.Errorf("learned policy has no %s", want)
		}
	}
	for _, not := range []string{"a.svc.test", "x.other.test", "d.svc.test"} {
		if strings.Contains(string(proposal), "- "+not) || strings.Contains(string(proposal), "\""+not+"\"") {
			t.Errorf("learned policy names %s (want it covered by *.svc.test, or never seen)", not)
		}
	}

	// Round 2: enforce mode with the learned policy.
	enforceCfg := filepath.Join(r.dir, "enforce.yaml")
	writeFile(t, enforceCfg, base("enforce")+policySection(string(proposal)))
	// The learned file as written (learn writes version 1 with the policy),
	// and the config that enforces it, pass both checks.
	for _, check := range [][]string{
		{"config", "check", learned}, {"policy", "check", learned},
		{"config", "check", enforceCfg}, {"policy", "check", enforceCfg},
	} {
		out, err := exec.Command(bin, check...).CombinedOutput()
		if err != nil {
			t.Errorf("airlock %s %s: %v\n%s", check[0], check[1], err, out)
		} else {
			t.Logf("airlock %s: %s", strings.Join(check, " "), strings.TrimSpace(string(out)))
		}
	}
	p2 := startAirlockIn(t, r.gw, enforceCfg, admin)
	learnTraffic(t, r, proxy)
	waitRecords(t, p2.logPath, func(recs []map[string]any) bool {
		n := 0
		for _, rec := range recs {
			if rec["msg"] == "egress decision" {
				n++
			}
		}
		return n >= 5
	})
	allowed := 0
	for _, rec := range airlockRecords(t, p2.logPath) {
		switch {
		case rec["verdict"] == "deny":
			t.Errorf("enforce with the learned policy: a deny for the learned traffic: %v", rec)
		case rec["verdict"] == "allow" && rec["rule"] != nil:
			allowed++
		}
	}
	if allowed < 9 {
		t.Errorf("enforce: %d records allowed by a rule, want at least 9 (4 names, 5 flows)", allowed)
	}

	// Rule hits: every learned rule decided something, for the gateway, and
	// the name rules for DNS too; the running server exports the same
	// counts as airlock_policy_rule_hits_total.
	out, err = exec.Command(bin, "policy", "hits", "--from", p2.logPath, "--config", enforceCfg, "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("airlock policy hits: %v\n%s", err, out)
	}
	var rep policy.HitsReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("airlock policy hits --json: %v\n%s", err, out)
	}
	if len(rep.Rules) != 3 || len(rep.NeverHit()) != 0 {
		t.Errorf("policy hits: %d rules, never hit %v; want the 3 learned rules, each hit\n%s", len(rep.Rules), rep.NeverHit(), out)
	}
	metrics := scrapeIn(t, r.gw, "http://"+admin+"/metrics")
	series := map[string]int{}
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "airlock_policy_rule_hits_total{") && strings.Contains(line, `group="learned"`) {
			for _, c := range []string{"gateway", "dns"} {
				if strings.Contains(line, `component="`+c+`"`) {
					series[c]++
				}
			}
		}
	}
	if series["gateway"] != 3 || series["dns"] != 2 {
		t.Errorf("airlock_policy_rule_hits_total series: %v, want gateway 3 (every rule), dns 2 (the name rules)\n%s", series, metrics)
	}

	// Never seen, in another registrable domain: denied by DNS and by the
	// gateway (both listeners).
	if rc := dnsRcode(t, r.node, rigGwAddr+":53", "x.other.test."); rc != dns.RcodeNameError {
		t.Errorf("DNS x.other.test: %s, want NXDOMAIN", dns.RcodeToString[rc])
	}
	if code := connectCode(t, r.node, proxy, "x.other.test:443"); code != http.StatusForbidden {
		t.Errorf("CONNECT x.other.test:443 = %d, want 403", code)
	}
	if body, err := httpsGetIn(r.node, learnNames["x.other.test"]+":443", "x.other.test"); err == nil {
		t.Errorf("transparent https to x.other.test answered %q, want the connection refused", body)
	}
	// Never seen, under *.svc.test: allowed.
	if got := lookupA(t, r.node, rigGwAddr+":53", "d.svc.test."); len(got) != 1 || got[0] != learnNames["d.svc.test"] {
		t.Errorf("DNS d.svc.test = %v, want [%s] (allowed by *.svc.test)", got, learnNames["d.svc.test"])
	}
	if body, err := httpsGetIn(r.node, learnNames["d.svc.test"]+":443", "d.svc.test"); err != nil || body != "hello from d.svc.test" {
		t.Errorf("transparent https to d.svc.test = %q, %v; want allowed by *.svc.test", body, err)
	}
	waitRecords(t, p2.logPath, func(recs []map[string]any) bool {
		deny := map[string]bool{}
		for _, rec := range recs {
			if rec["verdict"] != "deny" {
				continue
			}
			deny[fmt.Sprint(rec["msg"], " ", rec["listener"], " ", rec["qname"], rec["name"])] = true
		}
		return deny["dns decision <nil> x.other.test<nil>"] && deny["egress decision proxy <nil>x.other.test"] &&
			deny["egress decision transparent <nil>x.other.test"]
	})
}

// scrapeIn GETs url from inside ns and returns the body.
func scrapeIn(t *testing.T, ns, url string) string {
	t.Helper()
	resp, err := nsClient(ns, 5*time.Second).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, b)
	}
	return string(b)
}

// learnTraffic is the node's traffic of both rounds. Every request must
// succeed (in round 1 because report mode lets it through).
func learnTraffic(t *testing.T, r *isolationRig, proxy string) {
	t.Helper()
	dnsAddr := rigGwAddr + ":53"
	for _, name := range []string{"a.svc.test", "b.svc.test", "c.svc.test", "solo.other.test"} {
		if got := lookupA(t, r.node, dnsAddr, name+"."); len(got) != 1 || got[0] != learnNames[name] {
			t.Errorf("DNS %s = %v, want [%s]", name, got, learnNames[name])
		}
	}
	for _, name := range []string{"a.svc.test", "c.svc.test"} {
		if body, err := httpsGetIn(r.node, learnNames[name]+":443", name); err != nil || body != "hello from "+name {
			t.Errorf("transparent https to %s = %q, %v", name, body, err)
		}
	}
	if body, err := httpGetIn(r.node, learnNames["solo.other.test"]+":80", "solo.other.test"); err != nil || body != "hello from solo.other.test" {
		t.Errorf("transparent http to solo.other.test = %q, %v", body, err)
	}
	// CONNECT by name, TLS inside.
	c, br, code := connectIn(t, r.node, proxy, "b.svc.test:443")
	if code != http.StatusOK {
		t.Errorf("CONNECT b.svc.test:443 = %d, want 200", code)
	} else if body, err := httpsOver(&bufConn{Conn: c, r: br}, "b.svc.test"); err != nil || body != "hello from b.svc.test" {
		t.Errorf("https through CONNECT b.svc.test = %q, %v", body, err)
	}
	c.Close()
	// CONNECT by address, raw TCP inside: no name.
	c, br, code = connectIn(t, r.node, proxy, learnTCPService)
	if code != http.StatusOK {
		t.Errorf("CONNECT %s = %d, want 200", learnTCPService, code)
	} else {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "ping\n")
		if line, err := br.ReadString('\n'); err != nil || line != "echo:ping\n" {
			t.Errorf("tcp echo through CONNECT = %q, %v", line, err)
		}
	}
	c.Close()
}

// policySection returns the learned document's policy section to append
// to a config: the document minus a version line or document marker of
// its own.
func policySection(doc string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(doc, "\n") {
		if strings.HasPrefix(line, "version:") || strings.TrimSpace(line) == "---" {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

// waitRecords waits (20 s at most) until ok holds for the decision
// records of the log at path.
func waitRecords(t *testing.T, path string, ok func([]map[string]any) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		recs := airlockRecords(t, path)
		if ok(recs) {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, r := range recs {
				fmt.Fprintf(&b, "%v\n", r)
			}
			t.Fatalf("the decision records of %s never became what the test waits for:\n%s", path, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// forwarderIn serves the names' A records (TTL 300) on addr (UDP and TCP)
// inside ns; other names are NXDOMAIN, other types NODATA.
func forwarderIn(t *testing.T, ns, addr string, names map[string]string) {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	var err error
	netnstest.Do(t, ns, func() {
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			return
		}
		ln, err = net.Listen("tcp", addr)
	})
	if err != nil {
		t.Fatalf("forwarder listen %s in %s: %v", addr, ns, err)
	}
	dnstest.Serve(t, pc, ln, dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		ip, ok := names[strings.TrimSuffix(strings.ToLower(q.Name), ".")]
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			rr, _ := dns.NewRR(fmt.Sprintf("%s 300 IN A %s", q.Name, ip))
			m.Answer = append(m.Answer, rr)
		}
		w.WriteMsg(m)
	}))
}

// tcpEchoIn answers each line on addr in ns with "echo:" + the line.
func tcpEchoIn(t *testing.T, ns, addr string) {
	t.Helper()
	ln := listenIn(t, ns, "tcp", addr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := io.WriteString(c, "echo:"+sc.Text()+"\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// dnsRcode asks server (from ns) for name's A records and returns the rcode.
func dnsRcode(t testing.TB, ns, server, name string) int {
	t.Helper()
	return exchangeA(t, ns, server, name).Rcode
}

// connectIn sends CONNECT target to proxy from ns and returns the
// connection, a reader past the response head, and the status code.
func connectIn(t *testing.T, ns, proxy, target string) (net.Conn, *bufio.Reader, int) {
	t.Helper()
	c, err := dialIn(ns, "tcp", proxy, 5*time.Second)
	if err != nil {
		t.Fatalf("dial proxy %s from %s: %v", proxy, ns, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	c.SetDeadline(time.Time{})
	return c, br, resp.StatusCode
}

func connectCode(t *testing.T, ns, proxy, target string) int {
	t.Helper()
	c, _, code := connectIn(t, ns, proxy, target)
	c.Close()
	return code
}

// bufConn reads through r (bytes already buffered past a CONNECT answer).
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// httpsGetIn dials addr from ns and GETs / over TLS with SNI and Host name
// (the servers' certificates are self-signed: not verified).
func httpsGetIn(ns, addr, name string) (string, error) {
	c, err := dialIn(ns, "tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	return httpsOver(c, name) // cluster_rig_test.go
}

// httpGetIn dials addr from ns and GETs / in plain HTTP with Host name.
func httpGetIn(ns, addr, name string) (string, error) {
	c, err := dialIn(ns, "tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return httpOver(c, name)
}

func httpOver(c net.Conn, host string) (string, error) {
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), nil
}
