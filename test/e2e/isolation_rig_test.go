//go:build e2e

package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// The isolation rig is four throwaway network namespaces in a line, the
// shape of an isolated cluster:
//
//	[pod] p0 198.18.20.2 ── n1 198.18.20.1 [node] n0 198.18.21.2 ── g0 198.18.21.1 [gw] g1 198.18.22.1 ── i0 198.18.22.2 [inet]
//	      fdaa:20::2          fdaa:20::1         fdaa:21::2          fdaa:21::1       fdaa:22::1          fdaa:22::2
//
// node and gw forward. inet holds the "internet" on its loopback: the
// addresses below, reached only through gw. airlock serve (registry, DNS,
// gateway) runs in gw; containerd and `airlock node` in node.
const (
	rigPodAddr  = "198.18.20.2"
	rigNodeAddr = "198.18.21.2" // node's address towards gw
	rigGwAddr   = "198.18.21.1" // gw's address towards the node: registry, DNS, gateway, next hop
	rigGwInet   = "198.18.22.1"

	inetAllowed  = "198.19.0.10"  // allowed.test: HTTPS and HTTP
	inetDenied   = "198.19.0.11"  // denied.test: HTTPS, HTTP, udp/443 echo, tcp/22
	inetRegistry = "198.19.0.20"  // docker-registry, the upstream of mcr.microsoft.com
	inetResolver = "198.19.0.53"  // unbound: test zones only, airlock DNS's forwarder
	inetNTP      = "198.19.0.123" // ntp.test: UDP echo on 123
	inetNTP2     = "198.19.0.124" // not named: UDP echo on 123
	inetMetadata = "169.254.169.254"

	inetAllowed6 = "fdaa:19::10"
	inetDenied6  = "fdaa:19::11"
)

type isolationRig struct {
	pod, node, gw, inet string // namespace names
	gwNodeIf            string // gw's interface towards the node
	dir                 string
}

// newIsolationRig builds the namespaces, links, addresses and routes. Every
// namespace is deleted at cleanup.
func newIsolationRig(t *testing.T) *isolationRig {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("e2e: network namespaces need root (make e2e runs as root)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/deps.sh installs it): %v", tool, err)
		}
	}
	b := make([]byte, 3)
	rand.Read(b)
	sfx := hex.EncodeToString(b)
	r := &isolationRig{
		pod: "alx-pod-" + sfx, node: "alx-node-" + sfx, gw: "alx-gw-" + sfx, inet: "alx-inet-" + sfx,
		gwNodeIf: "alx" + sfx + "g0", dir: t.TempDir(),
	}
	p0, n1, n0, g0, g1, i0 := "alx"+sfx+"p0", "alx"+sfx+"n1", "alx"+sfx+"n0", r.gwNodeIf, "alx"+sfx+"g1", "alx"+sfx+"i0"
	for _, ns := range []string{r.pod, r.node, r.gw, r.inet} {
		netnstest.Add(t, ns)
	}
	netnstest.Exec(t, "ip", "link", "add", p0, "netns", r.pod, "type", "veth", "peer", "name", n1, "netns", r.node)
	netnstest.Exec(t, "ip", "link", "add", n0, "netns", r.node, "type", "veth", "peer", "name", g0, "netns", r.gw)
	netnstest.Exec(t, "ip", "link", "add", g1, "netns", r.gw, "type", "veth", "peer", "name", i0, "netns", r.inet)
	type link struct{ ns, dev, v4, v6 string }
	for _, l := range []link{
		{r.pod, p0, rigPodAddr + "/24", "fdaa:20::2/64"},
		{r.node, n1, "198.18.20.1/24", "fdaa:20::1/64"},
		{r.node, n0, rigNodeAddr + "/24", "fdaa:21::2/64"},
		{r.gw, g0, rigGwAddr + "/24", "fdaa:21::1/64"},
		{r.gw, g1, rigGwInet + "/24", "fdaa:22::1/64"},
		{r.inet, i0, "198.18.22.2/24", "fdaa:22::2/64"},
	} {
		netnstest.Exec(t, "ip", "-n", l.ns, "addr", "add", l.v4, "dev", l.dev)
		netnstest.Exec(t, "ip", "-n", l.ns, "addr", "add", l.v6, "dev", l.dev, "nodad")
		netnstest.Exec(t, "ip", "-n", l.ns, "link", "set", l.dev, "up")
	}
	for _, a := range []string{inetAllowed, inetDenied, inetRegistry, inetResolver, inetNTP, inetNTP2, inetMetadata} {
		netnstest.Exec(t, "ip", "-n", r.inet, "addr", "add", a+"/32", "dev", "lo")
	}
	for _, a := range []string{inetAllowed6, inetDenied6} {
		netnstest.Exec(t, "ip", "-n", r.inet, "addr", "add", a+"/128", "dev", "lo", "nodad")
	}
	for _, ns := range []string{r.node, r.gw} {
		netnstest.Exec(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		netnstest.Exec(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	}
	routes := [][]string{
		{r.pod, "default", "via", "198.18.20.1"},
		{r.pod, "-6", "default", "via", "fdaa:20::1"},
		{r.node, "default", "via", rigGwAddr},
		{r.node, "-6", "default", "via", "fdaa:21::1"},
		{r.gw, "default", "via", "198.18.22.2"},
		{r.gw, "-6", "default", "via", "fdaa:22::2"},
		{r.gw, "198.18.20.0/24", "via", rigNodeAddr},
		{r.gw, "-6", "fdaa:20::/64", "via", "fdaa:21::2"},
		{r.inet, "198.18.0.0/15", "via", rigGwInet},
		{r.inet, "-6", "fdaa::/16", "via", "fdaa:22::1"},
	}
	for _, rt := range routes {
		args := []string{"ip", "-n", rt[0]}
		rest := rt[1:]
		if rest[0] == "-6" {
			args = append(args, "-6")
			rest = rest[1:]
		}
		args = append(args, "route", "add")
		netnstest.Exec(t, append(args, rest...)...)
	}
	return r
}

// listenIn opens a listener in namespace ns.
func listenIn(t testing.TB, ns, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	netnstest.Do(t, ns, func() { ln, err = net.Listen(network, addr) })
	if err != nil {
		t.Fatalf("listen %s %s in %s: %v", network, addr, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// udpEchoIn answers every datagram on addr in ns with id + ":" + payload.
func udpEchoIn(t testing.TB, ns, addr, id string) {
	t.Helper()
	var pc net.PacketConn
	var err error
	netnstest.Do(t, ns, func() { pc, err = net.ListenPacket("udp", addr) })
	if err != nil {
		t.Fatalf("udp listen %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(id+":"), buf[:n]...), from)
		}
	}()
}

// webIn serves HTTPS (a self-signed certificate for name) and plain HTTP
// on ip in ns; both answer "hello from NAME".
func webIn(t testing.TB, ns, ip, name string) {
	t.Helper()
	cert := selfSigned(t, name)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello from "+name) })
	for _, port := range []string{"443", "80"} {
		ln := listenIn(t, ns, "tcp", net.JoinHostPort(ip, port))
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		if port == "443" {
			ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
		}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
}

// selfSigned returns a certificate whose common name is name.
func selfSigned(t testing.TB, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startUnboundIn runs unbound in the foreground in ns on addr:53 with only
// the given local-data (and "." static: nothing is ever looked up
// outside). Stopped by its PID at cleanup.
func startUnboundIn(t testing.TB, ns, addr string, localData []string) {
	t.Helper()
	bin, err := exec.LookPath("unbound")
	if err != nil {
		bin = "/usr/sbin/unbound"
	}
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "server:\n  interface: %s\n  port: 53\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n", addr)
	fmt.Fprintf(&b, "  directory: %q\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n", dir)
	b.WriteString("  do-ip6: no\n  module-config: \"iterator\"\n  access-control: 0.0.0.0/0 allow\n")
	b.WriteString("  local-zone: \".\" static\n  local-zone: \"test.\" static\n")
	for _, d := range localData {
		fmt.Fprintf(&b, "  local-data: %q\n", d)
	}
	b.WriteString("remote-control:\n  control-enable: no\n")
	conf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, "unbound", filepath.Join(dir, "unbound.log"), "ip", "netns", "exec", ns, bin, "-d", "-c", conf)
	t.Cleanup(func() { p.stop(5 * time.Second) })
	var ready bool
	for range 100 {
		netnstest.Do(t, ns, func() {
			c, err := net.DialTimeout("tcp", addr+":53", 100*time.Millisecond)
			if err == nil {
				c.Close()
				ready = true
			}
		})
		if ready || p.exited() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !ready {
		t.Fatalf("unbound in %s not listening on %s:53 (exited %v: %v)\n%s", ns, addr, p.exited(), p.waitErr, p.logTail(20))
	}
}

// startAirlockIn runs `airlock serve --config cfg` in ns and waits for
// /readyz on admin (an address inside ns). Stopped by its PID (SIGTERM,
// exit 0 expected) at cleanup.
func startAirlockIn(t testing.TB, ns, cfgPath, admin string) *process {
	t.Helper()
	bin := needAirlock(t)
	p := startProcess(t, "airlock", cfgPath+".log", "ip", "netns", "exec", ns, bin, "serve", "--config", cfgPath)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("airlock log (last lines):\n%s", p.logTail(60))
		}
		if killed, err := p.stop(15 * time.Second); killed || err != nil {
			t.Errorf("airlock (pid %d) stop: killed=%v err=%v", p.pid(), killed, err)
		}
	})
	ready := func() bool {
		ok := false
		// net/http dials on goroutines of its own, outside ns: one raw
		// request on a connection made here.
		netnstest.Do(t, ns, func() {
			c, err := net.DialTimeout("tcp", admin, time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Second))
			io.WriteString(c, "GET /readyz HTTP/1.0\r\nHost: airlock\r\n\r\n")
			status, _ := bufio.NewReader(c).ReadString('\n')
			ok = strings.HasPrefix(status, "HTTP/1.0 200") || strings.HasPrefix(status, "HTTP/1.1 200")
		})
		return ok
	}
	if err := waitFor(p, 30*time.Second, ready); err != nil {
		t.Fatalf("airlock in %s: %v\n%s", ns, err, p.logTail(40))
	}
	return p
}

// runIn runs a command inside ns and returns its combined output and exit
// code (-1 when it could not run).
func runIn(ns string, timeout time.Duration, args ...string) (string, int) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		return string(out) + "\n(killed after " + timeout.String() + ")", -1
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		return string(out) + err.Error(), -1
	}
	return string(out), 0
}
