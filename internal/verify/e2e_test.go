//go:build e2e

package verify

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/miekg/dns"

	"github.com/airlockdev/airlock/internal/testkit/dnstest"
	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// The e2e test builds two throwaway network namespaces:
//
//	[alxv-node] alxv-n0 198.18.1.2 fdaa:1::2 ── alxv-i0 198.18.1.1 fdaa:1::1 [alxv-inet]
//	inet lo: 198.19.0.10 + fdaa:99::10 (denied: HTTPS+DoH :443, HTTP :80, UDP echo :443),
//	         fdaa:99::66 (off-link IPv6: the ICMPv6 reflector, airlock verify's own, answers there),
//	         198.19.0.20 (allowed.test, HTTPS :443, nothing on :8443), 198.19.0.53 (outside
//	         resolver, udp+tcp 53), 198.19.0.30 (mirror registry :5000), 198.19.0.254 (metadata
//	         stand-in, HTTP :80)
//	node lo: 127.0.0.1:53 the node's resolver (allowed.test → 198.19.0.20, the rest NXDOMAIN)
//
// nftables in alxv-node drops everything but loopback, established flows,
// the allowed name's :443 and the registry. The test runs the battery from
// alxv-node (--netns) and checks: 0 leaks with the drop; every channel
// leaks without it; accepting udp/443 alone flags exactly udp-443.

const (
	nsNode = "alxv-node"
	nsInet = "alxv-inet"
)

func nft(t *testing.T, ruleset string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", nsNode, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f in %s: %v\n%s\n%s", nsNode, err, out, ruleset)
	}
}

func topology(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and nftables")
	}
	for _, ns := range []string{nsNode, nsInet} {
		exec.Command("ip", "netns", "del", ns).Run() // a previous run's leftovers
		netnstest.Add(t, ns)
	}
	netnstest.Exec(t, "ip", "link", "add", "alxv-n0", "netns", nsNode, "type", "veth", "peer", "name", "alxv-i0", "netns", nsInet)
	netnstest.Exec(t, "ip", "-n", nsNode, "addr", "add", "198.18.1.2/24", "dev", "alxv-n0")
	netnstest.Exec(t, "ip", "-n", nsNode, "-6", "addr", "add", "fdaa:1::2/64", "dev", "alxv-n0", "nodad")
	netnstest.Exec(t, "ip", "-n", nsNode, "link", "set", "alxv-n0", "up")
	netnstest.Exec(t, "ip", "-n", nsNode, "route", "add", "default", "via", "198.18.1.1")
	netnstest.Exec(t, "ip", "-n", nsNode, "-6", "route", "add", "default", "via", "fdaa:1::1")
	netnstest.Exec(t, "ip", "-n", nsInet, "addr", "add", "198.18.1.1/24", "dev", "alxv-i0")
	netnstest.Exec(t, "ip", "-n", nsInet, "-6", "addr", "add", "fdaa:1::1/64", "dev", "alxv-i0", "nodad")
	netnstest.Exec(t, "ip", "-n", nsInet, "link", "set", "alxv-i0", "up")
	for _, a := range []string{"198.19.0.10/32", "198.19.0.20/32", "198.19.0.30/32", "198.19.0.53/32", "198.19.0.254/32"} {
		netnstest.Exec(t, "ip", "-n", nsInet, "addr", "add", a, "dev", "lo")
	}
	netnstest.Exec(t, "ip", "-n", nsInet, "-6", "addr", "add", "fdaa:99::10/128", "dev", "lo")
	netnstest.Exec(t, "ip", "-n", nsInet, "-6", "addr", "add", "fdaa:99::66/128", "dev", "lo")
}

// reflectIn runs the ICMPv6 reflector in ns until the test ends, on a
// thread that joined ns and is never unlocked. It returns once the
// reflector's socket is open, so no probe sent after it is missed.
func reflectIn(t *testing.T, ns string) {
	ctx, cancel := context.WithCancel(context.Background())
	opened := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		n, err := openNetns(ns)
		if err == nil {
			defer n.close()
			err = n.enter()
		}
		var r *Reflector
		if err == nil {
			r, err = OpenReflector()
		}
		opened <- err
		if err != nil {
			done <- nil
			return
		}
		done <- r.Serve(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	if err := <-opened; err != nil {
		cancel()
		t.Fatalf("reflector in %s: %v", ns, err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reflector in %s: %v", ns, err)
		}
	})
}

// serveIn starts the far side's servers in alxv-inet and the node's
// resolver in alxv-node.
func serveIn(t *testing.T) {
	denied, allowed := testCert(t, "denied.test"), testCert(t, "allowed.test")
	doh := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q := new(dns.Msg)
		if q.Unpack(body) != nil {
			io.WriteString(w, "denied host")
			return
		}
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeNameError)
		out, _ := m.Pack()
		w.Header().Set("Content-Type", "application/dns-message")
		w.Write(out)
	})
	var lns []net.Listener
	var pcs []net.PacketConn
	tcp := func(addr string) net.Listener {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen %s: %v", addr, err)
		}
		lns = append(lns, ln)
		return ln
	}
	udp := func(addr string) net.PacketConn {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("listen udp %s: %v", addr, err)
		}
		pcs = append(pcs, pc)
		return pc
	}
	serveHTTP := func(ln net.Listener, h http.Handler) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	records := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 198.19.0.99")
		m.Answer = append(m.Answer, rr)
		w.WriteMsg(m)
	})
	nodeDNS := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if q.Question[0].Name == "allowed.test." {
			if q.Question[0].Qtype == dns.TypeA {
				rr, _ := dns.NewRR("allowed.test. 60 IN A 198.19.0.20")
				m.Answer = append(m.Answer, rr)
			}
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	netnstest.Do(t, nsInet, func() {
		serveHTTP(tls.NewListener(tcp("198.19.0.10:443"), &tls.Config{Certificates: []tls.Certificate{denied}}), doh)
		serveHTTP(tls.NewListener(tcp("[fdaa:99::10]:443"), &tls.Config{Certificates: []tls.Certificate{denied}}), doh)
		serveHTTP(tcp("198.19.0.10:80"), doh)
		serveHTTP(tcp("198.19.0.254:80"), doh)
		serveHTTP(tls.NewListener(tcp("198.19.0.20:443"), &tls.Config{Certificates: []tls.Certificate{allowed}}), nil)
		serveHTTP(tcp("198.19.0.30:5000"), ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))))
		echo := udp("198.19.0.10:443")
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := echo.ReadFrom(buf)
				if err != nil {
					return
				}
				echo.WriteTo(buf[:n], from)
			}
		}()
		dnstest.Serve(t, udp("198.19.0.53:53"), tcp("198.19.0.53:53"), records)
	})
	netnstest.Do(t, nsNode, func() {
		dnstest.Serve(t, udp("127.0.0.1:53"), nil, nodeDNS)
	})
	t.Cleanup(func() {
		for _, ln := range lns {
			ln.Close()
		}
		for _, pc := range pcs {
			pc.Close()
		}
	})
}

// pushImage stores an image in the mirror registry, dialling from
// alxv-inet.
func pushImage(t *testing.T, e *env) {
	ref, err := name.ParseReference("198.19.0.30:5000/aks-managed-repository/oss/kubernetes/pause:3.6", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DialContext: e.dial}
	if err := remote.Write(ref, img, remote.WithTransport(tr)); err != nil {
		t.Fatalf("pushing the test image: %v", err)
	}
}

const nodeRules = `
table inet alxv_verify {
	chain output {
		type filter hook output priority 0; policy accept;
		oif "lo" accept
		ct state established,related accept
		ip daddr 198.19.0.20 tcp dport 443 accept comment "allowed name (the gateway's job)"
		ip daddr 198.19.0.30 tcp dport 5000 accept comment "mirror registry"
		%s
		drop comment "isolation"
	}
}
`

func setRules(t *testing.T, extra string, withDrop bool) {
	rules := fmt.Sprintf(nodeRules, extra)
	if !withDrop {
		rules = strings.Replace(rules, `drop comment "isolation"`, "", 1)
	}
	exec.Command("ip", "netns", "exec", nsNode, "nft", "delete", "table", "inet", "alxv_verify").Run()
	nft(t, rules)
}

func TestE2EVerify(t *testing.T) {
	topology(t)
	serveIn(t)
	inet, err := openNetns(nsInet)
	if err != nil {
		t.Fatal(err)
	}
	defer inet.close()
	pushImage(t, &env{ns: inet})
	reflectIn(t, nsInet)

	root := writeRoot(t, map[string]string{
		"etc/resolv.conf": "nameserver 127.0.0.1\n",
		"etc/containerd/certs.d/mcr.microsoft.com/hosts.toml": `server = "https://mcr.microsoft.com"

[host."http://198.19.0.30:5000/v2/aks-managed-repository"]
  capabilities = ["pull", "resolve"]
  override_path = true
`,
	})
	targets := Targets{
		DeniedAddress:   "198.19.0.10:443",
		DeniedAddress6:  "[fdaa:99::10]:443",
		DeniedName:      "exfil.test",
		AllowedName:     "allowed.test:443",
		DeniedPort:      8443,
		OutsideResolver: "198.19.0.53:53",
		MetadataAddress: "198.19.0.254:80",
		DoHURL:          "https://198.19.0.10/dns-query",
		RegistryImage:   "mcr.microsoft.com/oss/kubernetes/pause:3.6",
		OffLinkIPv6:     "fdaa:99::66",
	}
	verifyOnce := func(t *testing.T) Report {
		t.Helper()
		start := time.Now()
		rep, err := Run(context.Background(), targets, Options{Root: root, Netns: nsNode, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		rep.WriteTable(&b)
		t.Logf("verify from %s took %s:\n%s", nsNode, time.Since(start).Round(time.Millisecond), b.String())
		return rep
	}
	leaks := func(rep Report) []string {
		var out []string
		for _, r := range rep.Rows {
			if r.Got == Leak {
				out = append(out, r.Channel)
			}
		}
		sort.Strings(out)
		return out
	}

	t.Run("isolated", func(t *testing.T) {
		setRules(t, "", true)
		rep := verifyOnce(t)
		if got := leaks(rep); len(got) != 0 {
			t.Errorf("leaks with the drop in place = %v, want none", got)
		}
		for _, r := range rep.Rows {
			want := Blocked
			switch r.Channel {
			case "allowed-name", "registry-image":
				want = Reachable
			case "domain-fronting":
				want = NotTestable
			}
			if r.Got != want {
				t.Errorf("%s = %s (%s), want %s", r.Channel, r.Got, r.Evidence, want)
			}
		}
		if rep.Verdict() != Clean || !strings.Contains(rep.Resolver, "127.0.0.1:53") {
			t.Errorf("Verdict() = %v, resolver %q; want Clean and 127.0.0.1:53 from resolv.conf", rep.Verdict(), rep.Resolver)
		}
	})

	t.Run("drop removed", func(t *testing.T) {
		setRules(t, "", false)
		rep := verifyOnce(t)
		want := []string{"allowed-name-denied-port", "dns-outside-tcp", "dns-outside-udp", "doh", "http-ip-literal-host",
			"icmp-echo", "icmpv6-echo", "icmpv6-mld-report", "icmpv6-nd-neighbor-advert", "icmpv6-nd-neighbor-solicit",
			"icmpv6-nd-router-solicit", "icmpv6-unassigned", "ipv6", "metadata", "tcp-ip", "tls-allowed-sni-denied-ip", "udp-443"}
		if d := cmp.Diff(want, leaks(rep)); d != "" {
			t.Errorf("leaks without the drop (-want +got):\n%s", d)
		}
		if rep.Verdict() != Leaked {
			t.Errorf("Verdict() = %v, want Leaked", rep.Verdict())
		}
	})

	t.Run("only udp/443 open", func(t *testing.T) {
		setRules(t, "udp dport 443 accept", true)
		rep := verifyOnce(t)
		if d := cmp.Diff([]string{"udp-443"}, leaks(rep)); d != "" {
			t.Errorf("leaks with only udp/443 open (-want +got):\n%s", d)
		}
	})

	t.Run("neighbour discovery accepted to any destination", func(t *testing.T) {
		// The rule airlock node had before issue 10.
		setRules(t, "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept", true)
		rep := verifyOnce(t)
		want := []string{"icmpv6-nd-neighbor-advert", "icmpv6-nd-neighbor-solicit", "icmpv6-nd-router-solicit"}
		if d := cmp.Diff(want, leaks(rep)); d != "" {
			t.Errorf("leaks with neighbour discovery accepted to any destination (-want +got):\n%s", d)
		}
	})

	t.Run("registry unreachable", func(t *testing.T) {
		setRules(t, "", true)
		exec.Command("ip", "netns", "exec", nsNode, "nft", "delete", "table", "inet", "alxv_verify").Run()
		nft(t, strings.Replace(fmt.Sprintf(nodeRules, ""), `ip daddr 198.19.0.30 tcp dport 5000 accept comment "mirror registry"`, "", 1))
		rep := verifyOnce(t)
		if len(leaks(rep)) != 0 || rep.Verdict() != PositiveFailed {
			t.Errorf("leaks %v, Verdict() = %v; want none and PositiveFailed", leaks(rep), rep.Verdict())
		}
	})

	t.Run("exit codes of the binary", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "airlock")
		if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/airlock").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		cfg := filepath.Join(t.TempDir(), "airlock.yaml")
		os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 1
verify:
  targets:
    deniedAddress: %s
    deniedAddress6: "%s"
    deniedName: %s
    allowedName: %s
    outsideResolver: %s
    metadataAddress: %s
    dohURL: %s
    registryImage: %s
    offLinkIPv6: %q
`, targets.DeniedAddress, targets.DeniedAddress6, targets.DeniedName, targets.AllowedName, targets.OutsideResolver,
			targets.MetadataAddress, targets.DoHURL, targets.RegistryImage, targets.OffLinkIPv6)), 0o644)
		for _, tc := range []struct {
			extra string
			drop  bool
			want  int
		}{{"", true, 0}, {"", false, 1}, {"udp dport 443 accept", true, 1}} {
			setRules(t, tc.extra, tc.drop)
			cmd := exec.Command(bin, "verify", "--config", cfg, "--root", root, "--netns", nsNode, "--timeout", "1s", "--json")
			out, _ := cmd.Output()
			if code := cmd.ProcessState.ExitCode(); code != tc.want {
				t.Errorf("airlock verify (rules %q, drop %v) exit = %d, want %d\n%s", tc.extra, tc.drop, code, tc.want, out)
			}
		}
	})
}
