//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/airlockdev/airlock/internal/testkit/azuritetest"
	"github.com/airlockdev/airlock/internal/testkit/netnstest"
	"github.com/airlockdev/airlock/internal/testkit/redistest"
)

// The cluster rig (issue 13) is five throwaway network namespaces:
//
//	[node] 198.18.40.10 ─┐
//	                     ├─ br0 in [lan] ── VIP 198.18.40.100 (keepalived, on gw1 or gw2)
//	[gw1]  198.18.40.1  ─┤                  [gw1] 198.18.41.1 ── 198.18.41.2 [inet]
//	[gw2]  198.18.40.2  ─┘                  [gw2] 198.18.42.1 ── 198.18.42.2 [inet]
//
// gw1 and gw2 each run `airlock serve` (registry cache, DNS, gateway, all
// on 0.0.0.0) with the same policy, the same container on one Azurite and
// one Redis, plus keepalived (VRRP v3, unicast peers on the lan bridge)
// holding the virtual address; a replica whose /readyz does not answer 200
// gives it up (the shipped deploy/keepalived example). inet holds the "internet" on its loopback: the upstream
// registry, the resolver, web and UDP echo targets, Redis and Azurite. The
// upstream registry, Redis and Azurite run on the root namespace's
// loopback (so the existing helpers start, stop and count them) behind
// forwarders listening in inet; the registry's forwarder throttles, so a
// pull lasts long enough to kill a replica in its middle. The node routes
// everything to the VIP and runs containerd with hosts.toml listing gw1,
// then gw2.
const (
	clNodeAddr = "198.18.40.10"
	clGw1Lan   = "198.18.40.1"
	clGw2Lan   = "198.18.40.2"
	clVIP      = "198.18.40.100"
	clRedis    = "198.19.0.70:6379"
	clAzurite  = "198.19.0.71:10000"

	clProxyPort = "3128"
	// clVRID is the VRRP router id; the rig is alone on its bridge.
	clVRID = 42
)

// replica is one gateway host of the cluster rig: its namespace, its
// `airlock serve` and keepalived.
type replica struct {
	name, ns  string
	lanAddr   string // its own address on the lan
	lanIf     string // its interface on the lan (keepalived's)
	cfg       string
	dir       string
	proc      *process // current airlock; replaced by restart
	starts    int
	keepalive *process
}

// admin is the replica's admin listener as the test reaches it (airlock
// listens on 0.0.0.0:9090: the keepalived check asks 127.0.0.1:9090).
func (r *replica) admin() string { return r.lanAddr + ":9090" }

// registryAddr is its registry, as hosts.toml lists it.
func (r *replica) registryAddr() string { return r.lanAddr + ":5000" }

type clusterRig struct {
	node, lan, inet string
	gw1, gw2        *replica
	dir             string
	up              *registry      // docker-registry, the upstream of mcr.microsoft.com
	upLink          *throttleProxy // its forwarder in inet (rate per connection)
	redis           *redistest.Redis
	azurite         *azuritetest.Azurite
	container       string // the replicas' shared Azurite container
	ctrd            *containerd
	clusterKey      bool       // airlock serve accepted the cluster section
	t               *testing.T // the test the rig belongs to: its cleanups run at its end
}

// newClusterRig builds the namespaces, the far side, both replicas and
// keepalived, and waits until the VIP is on gw1. upRate is the upstream
// link's rate per connection (bytes/s, 0: unlimited).
func newClusterRig(t *testing.T, upRate int64) *clusterRig {
	t.Helper()
	skipUnlessAirlock(t)
	if os.Geteuid() != 0 {
		t.Skip("e2e: network namespaces need root (make e2e runs as root)")
	}
	for _, tool := range []string{"ip", "nft", "keepalived", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/deps.sh installs it): %v", tool, err)
		}
	}
	b := make([]byte, 3)
	rand.Read(b)
	sfx := hex.EncodeToString(b)
	c := &clusterRig{node: "alc-node-" + sfx, lan: "alc-lan-" + sfx, inet: "alc-inet-" + sfx, dir: t.TempDir(), t: t}
	c.gw1 = &replica{name: "gw1", ns: "alc-gw1-" + sfx, lanAddr: clGw1Lan, lanIf: "alc" + sfx + "g1l"}
	c.gw2 = &replica{name: "gw2", ns: "alc-gw2-" + sfx, lanAddr: clGw2Lan, lanIf: "alc" + sfx + "g2l"}
	for _, ns := range []string{c.node, c.lan, c.gw1.ns, c.gw2.ns, c.inet} {
		netnstest.Add(t, ns)
	}
	ex := netnstest.Exec
	br := "br0"
	ex(t, "ip", "-n", c.lan, "link", "add", br, "type", "bridge")
	ex(t, "ip", "-n", c.lan, "link", "set", br, "up")
	// The lan: node, gw1, gw2 each with a veth into the bridge.
	nodeIf := "alc" + sfx + "n0"
	for _, l := range []struct{ ns, dev, addr, port string }{
		{c.node, nodeIf, clNodeAddr, "alc" + sfx + "ln"},
		{c.gw1.ns, c.gw1.lanIf, clGw1Lan, "alc" + sfx + "l1"},
		{c.gw2.ns, c.gw2.lanIf, clGw2Lan, "alc" + sfx + "l2"},
	} {
		ex(t, "ip", "link", "add", l.dev, "netns", l.ns, "type", "veth", "peer", "name", l.port, "netns", c.lan)
		ex(t, "ip", "-n", c.lan, "link", "set", l.port, "master", br)
		ex(t, "ip", "-n", c.lan, "link", "set", l.port, "up")
		ex(t, "ip", "-n", l.ns, "addr", "add", l.addr+"/24", "dev", l.dev)
		ex(t, "ip", "-n", l.ns, "link", "set", l.dev, "up")
	}
	// Each gateway's own link to inet.
	for i, g := range []*replica{c.gw1, c.gw2} {
		n := 41 + i
		gw, in := fmt.Sprintf("alc%sg%dw", sfx, i+1), fmt.Sprintf("alc%si%d", sfx, i+1)
		ex(t, "ip", "link", "add", gw, "netns", g.ns, "type", "veth", "peer", "name", in, "netns", c.inet)
		ex(t, "ip", "-n", g.ns, "addr", "add", fmt.Sprintf("198.18.%d.1/24", n), "dev", gw)
		ex(t, "ip", "-n", c.inet, "addr", "add", fmt.Sprintf("198.18.%d.2/24", n), "dev", in)
		ex(t, "ip", "-n", g.ns, "link", "set", gw, "up")
		ex(t, "ip", "-n", c.inet, "link", "set", in, "up")
		ex(t, "ip", "-n", g.ns, "route", "add", "default", "via", fmt.Sprintf("198.18.%d.2", n))
		ex(t, "ip", "netns", "exec", g.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
	ex(t, "ip", "-n", c.node, "route", "add", "default", "via", clVIP)
	for _, a := range []string{inetAllowed, inetRegistry, inetResolver, inetNTP, inetNTP2, hostOf(clRedis), hostOf(clAzurite)} {
		ex(t, "ip", "-n", c.inet, "addr", "add", a+"/32", "dev", "lo")
	}

	// The far side.
	c.up = startUpstream(t)
	c.upLink = forwardInto(t, c.inet, inetRegistry+":5000", c.up.addr, upRate)
	c.redis = redistest.Start(t)
	forwardInto(t, c.inet, clRedis, c.redis.Addr, 0)
	c.azurite = azuritetest.Start(t)
	azuritetest.SetEnv(t) // inherited by every airlock the rig starts
	az, _ := url.Parse(c.azurite.Endpoint)
	forwardInto(t, c.inet, clAzurite, az.Host, 0)
	c.container = azuritetest.ContainerName(t)
	startUnboundIn(t, c.inet, inetResolver, []string{
		"allowed.test. 300 IN A " + inetAllowed,
		"ntp.test. 300 IN A " + inetNTP,
		"ntp2.test. 300 IN A " + inetNTP2,
	})
	webIn(t, c.inet, inetAllowed, "allowed.test")
	udpEchoIn(t, c.inet, inetNTP+":123", "ntp")
	udpEchoIn(t, c.inet, inetNTP2+":123", "ntp2")

	// The replicas.
	c.clusterKey = c.checkClusterKey(t)
	for _, g := range []*replica{c.gw1, c.gw2} {
		g.dir = filepath.Join(c.dir, g.name)
		if err := os.MkdirAll(filepath.Join(g.dir, "scratch"), 0o755); err != nil {
			t.Fatal(err)
		}
		g.cfg = filepath.Join(g.dir, "airlock.yaml")
		writeFile(t, g.cfg, c.replicaConfig(g, c.clusterKey))
		if out, code := runIn(g.ns, 30*time.Second, needAirlock(t), "gateway", "rules", "--config", g.cfg); code != 0 {
			t.Fatalf("[%s] airlock gateway rules: exit %d\n%s", g.name, code, out)
		}
		c.startReplica(t, g)
	}
	if c.clusterKey {
		for _, g := range []*replica{c.gw1, c.gw2} {
			if err := waitFor(g.proc, 15*time.Second, func() bool { s, b := c.readyz(g); return s == http.StatusOK && strings.HasPrefix(b, "ready") }); err != nil {
				s, b := c.readyz(g)
				t.Errorf("%s /readyz is %d %q, want ready (both replicas up, Redis up, the same config)", g.name, s, b)
			}
		}
	}
	c.startKeepalived(t, c.gw1, 150, c.gw2)
	c.startKeepalived(t, c.gw2, 100, c.gw1)
	if holder := c.waitVIP(t, 30*time.Second, c.gw1); holder != c.gw1 {
		t.Fatalf("VIP %s not on gw1 after 30s (holder %v)\ngw1 keepalived:\n%s\ngw2 keepalived:\n%s",
			clVIP, holder, c.gw1.keepalive.logTail(30), c.gw2.keepalive.logTail(30))
	}
	return c
}

func hostOf(hostport string) string {
	h, _, _ := net.SplitHostPort(hostport)
	return h
}

// forwardInto listens on addr inside ns and forwards every connection to
// target on the root namespace's loopback, limiting what flows back to
// rate bytes/s per connection (0: unlimited).
func forwardInto(t testing.TB, ns, addr, target string, rate int64) *throttleProxy {
	t.Helper()
	ln := listenIn(t, ns, "tcp", addr)
	p := &throttleProxy{ln: ln, addr: addr, target: target, conns: map[net.Conn]struct{}{}}
	p.rate.Store(rate)
	p.wg.Add(1)
	go p.accept() // dials from the root namespace: target is its loopback
	t.Cleanup(p.close)
	return p
}

// checkClusterKey reports whether this airlock accepts the cluster section
// (the wiring of issue 13 may not have landed yet).
func (c *clusterRig) checkClusterKey(t testing.TB) bool {
	t.Helper()
	probe := filepath.Join(c.dir, "probe.yaml")
	writeFile(t, probe, "version: 1\ncluster:\n  name: probe\n  redis:\n    addresses: [\""+clRedis+"\"]\nregistry: { listen: \"\", storage: { path: "+fmt.Sprintf("%q", filepath.Join(c.dir, "probe"))+" } }\n")
	out, code := runIn(c.inet, 30*time.Second, needAirlock(t), "config", "check", probe)
	if code != 0 {
		t.Errorf("this airlock rejects the cluster section (exit %d); the replicas run without Redis, so nothing is coordinated:\n%s", code, tailLines(out, 10))
		return false
	}
	return true
}

// replicaConfig is g's airlock.yaml: everything on 0.0.0.0 (so the VIP is
// served too), content in the shared container. The replicas' files differ
// only in cluster.name and cluster.advertise, so they agree on the config hash.
func (c *clusterRig) replicaConfig(g *replica, withCluster bool) string {
	store := "azblob://" + c.container + "?endpoint=" + url.QueryEscape("http://"+clAzurite+"/"+azuritetest.Account) + "&create=true"
	var cl string
	if withCluster {
		// advertise: a replica waiting for the other's blob fill streams it
		// from the other's registry.
		cl = fmt.Sprintf("cluster:\n  name: %s\n  advertise: \"http://%s:5000\"\n  redis:\n    addresses: [%q]\n", g.name, g.lanAddr, clRedis)
	}
	return fmt.Sprintf(`version: 1
log: { format: json, level: info }
admin: { listen: %[1]q }
%[2]sregistry:
  listen: "0.0.0.0:5000"
  storage: { url: %[3]q }
  anonymousPull: true
  cacheRules:
    - { name: %[5]s, sourceRepo: "%[6]s/*", targetRepo: "%[7]s/*" }
  upstreams: { %[6]s: { url: "http://%[8]s:5000" } }
  upstreamTimeout: 10s
dns:
  listen: "0.0.0.0:53"
  forwarders: [ "%[9]s:53" ]
  logAllowed: all
gateway:
  proxyListen: "0.0.0.0:%[10]s"
  transparentListen: "0.0.0.0:15001"
  l4Listen: "0.0.0.0:15002"
  udpIdleTimeout: 1s
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
            - { name: time, protocols: [UDP], sourceAddresses: ["198.18.0.0/15"], destinationFqdns: [ntp.test, ntp2.test], destinationPorts: ["123"] }
        - name: app
          type: application
          priority: 200
          action: allow
          rules:
            - { name: web, protocols: ["https:443", "http:80"], sourceAddresses: ["198.18.0.0/15"], targetFqdns: [allowed.test] }
`, "0.0.0.0:9090", cl, store, "", cacheRule, mcrHost, cacheTarget, inetRegistry, inetResolver, clProxyPort)
}

// startReplica starts g's airlock and waits for /readyz. The rig's test
// stops it at its end (SIGTERM, exit 0 expected), also when a subtest
// started it; a replica the test killed is left alone.
func (c *clusterRig) startReplica(t testing.TB, g *replica) {
	t.Helper()
	g.starts++
	logPath := filepath.Join(g.dir, fmt.Sprintf("airlock-%d.log", g.starts))
	// Scratch is the default (the temp directory), set per replica by
	// TMPDIR: a scratch path in the file would differ between the
	// replicas' configs.
	p := startProcessEnv(t, "airlock "+g.name, logPath, []string{"TMPDIR=" + filepath.Join(g.dir, "scratch")},
		"ip", "netns", "exec", g.ns, needAirlock(t), "serve", "--config", g.cfg)
	g.proc = p
	t = c.t
	t.Cleanup(func() {
		if p.exited() {
			return
		}
		if killed, err := p.stop(15 * time.Second); killed || err != nil {
			t.Errorf("airlock %s (pid %d) stop: killed=%v err=%v", g.name, p.pid(), killed, err)
		}
	})
	if err := waitFor(p, 30*time.Second, func() bool { s, _ := c.readyz(g); return s == http.StatusOK }); err != nil {
		t.Fatalf("airlock %s: %v\n%s", g.name, err, p.logTail(40))
	}
}

// logPath is the log of g's current airlock.
func (g *replica) logPath() string {
	return filepath.Join(g.dir, fmt.Sprintf("airlock-%d.log", g.starts))
}

// logs returns every log line g's airlock wrote, over all its starts.
func (g *replica) logs(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for i := 1; i <= g.starts; i++ {
		d, err := os.ReadFile(filepath.Join(g.dir, fmt.Sprintf("airlock-%d.log", i)))
		if err != nil {
			t.Fatalf("airlock log: %v", err)
		}
		b.Write(d)
	}
	return b.String()
}

// The keepalived example shipped for two gateway replicas, and where it
// expects its check script.
const (
	keepalivedExample   = "../../deploy/keepalived/keepalived.conf.example"
	keepalivedCheck     = "../../deploy/keepalived/keepalived-check.sh"
	keepalivedCheckPath = "/usr/local/lib/airlock/keepalived-check.sh"
)

// startKeepalived runs keepalived in g's namespace in the foreground, VRRP
// only, with the shipped example (deploy/keepalived) made g's: its lan
// interface and addresses, the rig's VIP and router id, priority 150 for
// gw1 and 100 for gw2, the check script copied into a directory only root
// may write. Pid files are private; stopped by its PID.
func (c *clusterRig) startKeepalived(t testing.TB, g *replica, priority int, peer *replica) {
	t.Helper()
	dir := filepath.Join(g.dir, "keepalived")
	if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(keepalivedExample)
	if err != nil {
		t.Fatal(err)
	}
	check, err := os.ReadFile(keepalivedCheck)
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "lib", "keepalived-check.sh")
	if err := os.WriteFile(script, check, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer(
		keepalivedCheckPath, script,
		"router_id airlock_gw1", "router_id airlock_"+g.name,
		"interface eth0", "interface "+g.lanIf,
		"dev eth0", "dev "+g.lanIf,
		"virtual_router_id 51", fmt.Sprintf("virtual_router_id %d", clVRID),
		"priority 150", fmt.Sprintf("priority %d", priority),
		"unicast_src_ip 10.42.2.4", "unicast_src_ip "+g.lanAddr,
		"\t\t10.42.2.5 ", "\t\t"+peer.lanAddr+" ",
		"10.42.2.100/24", clVIP+"/24",
	).Replace(string(raw))
	for _, want := range []string{script, g.lanIf, g.lanAddr, peer.lanAddr, clVIP} {
		if !strings.Contains(conf, want) {
			t.Fatalf("%s: could not make it %s's (no %q after the replacements):\n%s", keepalivedExample, g.name, want, conf)
		}
	}
	for _, line := range strings.Split(conf, "\n") {
		if code, _, _ := strings.Cut(line, "#"); strings.Contains(code, "10.42.2.") {
			t.Fatalf("%s: an example address is left after the replacements: %q", keepalivedExample, line)
		}
	}
	path := filepath.Join(dir, "keepalived.conf")
	writeFile(t, path, conf)
	p := startProcess(t, "keepalived "+g.name, filepath.Join(dir, "keepalived.log"), "ip", "netns", "exec", g.ns,
		"keepalived", "-n", "-l", "-D", "--vrrp", "-f", path, "-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"))
	g.keepalive = p
	t.Cleanup(func() { p.stop(10 * time.Second) })
}

// vipHolder is the replica whose lan interface holds the VIP (nil: none).
func (c *clusterRig) vipHolder(t testing.TB) *replica {
	t.Helper()
	var holder *replica
	for _, g := range []*replica{c.gw1, c.gw2} {
		out, _ := runIn(g.ns, 5*time.Second, "ip", "-4", "-o", "addr", "show", "dev", g.lanIf)
		if strings.Contains(out, " "+clVIP+"/") {
			if holder != nil {
				t.Errorf("VIP %s on both gw1 and gw2", clVIP)
			}
			holder = g
		}
	}
	return holder
}

// waitVIP waits until want holds the VIP; it returns the holder then, or
// at the deadline.
func (c *clusterRig) waitVIP(t testing.TB, timeout time.Duration, want *replica) *replica {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h := c.vipHolder(t)
		if h == want || time.Now().After(deadline) {
			return h
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nsClient is an HTTP client whose connections are dialled inside ns.
func nsClient(ns string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			var err error
			if rerr := netnstest.Run(ns, func() { c, err = (&net.Dialer{}).DialContext(ctx, network, addr) }); rerr != nil {
				return nil, rerr
			}
			return c, err
		},
	}}
}

// dialIn dials addr from inside ns.
func dialIn(ns, network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	var err error
	if rerr := netnstest.Run(ns, func() { c, err = net.DialTimeout(network, addr, timeout) }); rerr != nil {
		return nil, rerr
	}
	return c, err
}

// readyz is g's /readyz status and body (0 when it does not answer).
func (c *clusterRig) readyz(g *replica) (int, string) {
	resp, err := nsClient(g.ns, time.Second).Get("http://" + g.admin() + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric is name{labels} on g's /metrics (0 when absent or unreachable).
func (c *clusterRig) metric(g *replica, name string, labels ...string) (float64, bool) {
	resp, err := nsClient(g.ns, 2*time.Second).Get("http://" + g.admin() + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return metricSample(string(b), name, labels...)
}

// dnsAsk sends one A query for name over conn (a connected UDP socket)
// and waits up to timeout for the answer with its ID; it returns the A
// records.
func dnsAsk(conn net.Conn, name string, timeout time.Duration) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	dc := &dns.Conn{Conn: conn}
	conn.SetDeadline(time.Now().Add(timeout))
	if err := dc.WriteMsg(m); err != nil {
		return nil, err
	}
	for {
		r, err := dc.ReadMsg()
		if err != nil {
			return nil, err
		}
		if r.Id != m.Id {
			continue // a late answer to an earlier query
		}
		if r.Rcode != dns.RcodeSuccess {
			return nil, fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
		}
		var out []string
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				out = append(out, a.A.String())
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no A record")
		}
		return out, nil
	}
}

// tlsClient is a TLS client for name over conn that does not check the
// test server's self-signed certificate.
func tlsClient(conn net.Conn, name string) *tls.Conn {
	return tls.Client(conn, &tls.Config{ServerName: name, InsecureSkipVerify: true})
}

// httpsOver fetches https://name/ over conn (TLS with SNI name, the test
// certificate not checked) and returns the body.
func httpsOver(conn net.Conn, name string) (string, error) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tlsClient(conn, name)
	if err := tc.Handshake(); err != nil {
		return "", fmt.Errorf("tls: %w", err)
	}
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", name)
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// connectVia opens a CONNECT tunnel to target through the proxy at proxy,
// dialled from ns.
func connectVia(ns, proxy, target string) (net.Conn, error) {
	c, err := dialIn(ns, "tcp", proxy, 3*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s: %s", target, resp.Status)
	}
	if br.Buffered() > 0 {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s: proxy sent bytes after its answer", target)
	}
	return c, nil
}
