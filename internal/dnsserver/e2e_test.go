//go:build e2e

package dnsserver

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// startUnbound runs Debian's unbound in the foreground on a free loopback
// port with local test zones only: `local-zone: "." static` answers
// everything else NXDOMAIN, so nothing reaches the real DNS. It returns the
// address and a stop function (by PID).
func startUnbound(t *testing.T) (string, func()) {
	t.Helper()
	bin, err := exec.LookPath("unbound")
	if err != nil {
		bin = "/usr/sbin/unbound"
		if _, err := os.Stat(bin); err != nil {
			t.Skip("unbound not installed (apt-get install unbound)")
		}
	}
	port := freePort(t)
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, `server:
  interface: 127.0.0.1
  port: %d
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "%s"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  do-ip6: no
  module-config: "iterator"
  do-not-query-localhost: no
  outgoing-interface: 127.0.0.1
  local-zone: "." static
  local-zone: "allowed.test." static
  local-data: "www.allowed.test. 300 IN A 1.2.3.4"
  local-data: "www.allowed.test. 300 IN AAAA 2600::1"
  local-data: 'www.allowed.test. 300 IN TXT "exfil-me"'
  local-data: 'www.allowed.test. 300 IN HTTPS 1 . alpn="h2"'
  local-data: "evil.allowed.test. 300 IN CNAME x.denied.test."
  local-data: "local.allowed.test. 300 IN A 127.0.0.1"
  local-data: "short.allowed.test. 60 IN A 1.2.3.5"
  local-zone: "denied.test." static
  local-data: "denied.test. 300 IN A 1.2.3.6"
  local-data: "x.denied.test. 300 IN A 1.2.3.7"
`, port, dir)
	for i := range 60 {
		fmt.Fprintf(&b, "  local-data: \"big.allowed.test. 300 IN A 1.3.%d.%d\"\n", 3+i/200, 1+i%200)
	}
	b.WriteString("remote-control:\n  control-enable: no\n")
	conf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "-c", conf)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start unbound: %v", err)
	}
	pid := cmd.Process.Pid
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		syscall.Kill(pid, syscall.SIGTERM)
		cmd.Wait()
	}
	t.Cleanup(stop)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := new(dns.Msg)
		m.SetQuestion("www.allowed.test.", dns.TypeA)
		c := &dns.Client{Timeout: 200 * time.Millisecond}
		if r, _, err := c.Exchange(m, addr); err == nil && len(r.Answer) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unbound (pid %d) not answering on %s", pid, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, stop
}

// freePort returns a port free for both UDP and TCP on 127.0.0.1.
func freePort(t *testing.T) int {
	pc, ln, err := listenBoth("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	pc.Close()
	ln.Close()
	return port
}

// dig runs dig against addr and returns its output.
func dig(t *testing.T, addr string, args ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	full := append([]string{"@" + host, "-p", port, "+tries=1", "+time=5", "+nocookie"}, args...)
	out, err := exec.Command("dig", full...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return string(out)
}

var statusRE = regexp.MustCompile(`status: ([A-Z]+)`)

func status(out string) string {
	m := statusRE.FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

// answers returns the answer-section lines of dig output of type typ.
func answers(out, typ string) []string {
	var lines []string
	in := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, ";; ANSWER SECTION"):
			in = true
		case in && (l == "" || strings.HasPrefix(l, ";;")):
			in = false
		case in:
			if f := strings.Fields(l); len(f) >= 5 && f[3] == typ {
				lines = append(lines, f[4])
			}
		}
	}
	return lines
}

func TestE2EUnboundDig(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig not installed (apt-get install bind9-dnsutils)")
	}
	ub, stopUnbound := startUnbound(t)
	// The first forwarder is a socket that never answers.
	dead, _, err := listenBoth("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	cfg := defaults(dead.LocalAddr().String(), ub)
	cfg.ForwarderTimeout = 300 * time.Millisecond
	cfg.StaleFor = 10 * time.Minute
	cfg.ObservationGrace = time.Minute
	cfg.PrivateZones = privateZones()
	e := start(t, cfg, Deps{AllowIPv6: true})

	t.Run("allowed A via second forwarder", func(t *testing.T) {
		out := dig(t, e.addr, "www.allowed.test", "A")
		if got := answers(out, "A"); status(out) != "NOERROR" || fmt.Sprint(got) != "[1.2.3.4]" {
			t.Errorf("dig www.allowed.test A: status %s answers %v, want NOERROR [1.2.3.4]\n%s", status(out), got, out)
		}
	})
	t.Run("allowed AAAA", func(t *testing.T) {
		out := dig(t, e.addr, "www.allowed.test", "AAAA")
		if got := answers(out, "AAAA"); fmt.Sprint(got) != "[2600::1]" {
			t.Errorf("dig www.allowed.test AAAA: answers %v, want [2600::1]\n%s", got, out)
		}
	})
	t.Run("denied name", func(t *testing.T) {
		out := dig(t, e.addr, "denied.test", "A")
		if status(out) != "NXDOMAIN" || len(answers(out, "A")) != 0 {
			t.Errorf("dig denied.test A: status %s, want NXDOMAIN and no answer\n%s", status(out), out)
		}
		// unbound itself has the record: the denial is airlock's.
		if got := answers(dig(t, ub, "denied.test", "A"), "A"); fmt.Sprint(got) != "[1.2.3.6]" {
			t.Errorf("dig @unbound denied.test A = %v, want [1.2.3.6]", got)
		}
	})
	t.Run("CNAME into denied name", func(t *testing.T) {
		out := dig(t, e.addr, "evil.allowed.test", "A")
		if status(out) != "NXDOMAIN" || len(answers(out, "CNAME")) != 0 {
			t.Errorf("dig evil.allowed.test A: status %s, want NXDOMAIN and no CNAME\n%s", status(out), out)
		}
	})
	t.Run("TXT denied", func(t *testing.T) {
		out := dig(t, e.addr, "www.allowed.test", "TXT")
		if status(out) != "NXDOMAIN" || strings.Contains(out, "exfil-me") {
			t.Errorf("dig www.allowed.test TXT: status %s, want NXDOMAIN without the text\n%s", status(out), out)
		}
	})
	t.Run("HTTPS stripped", func(t *testing.T) {
		if got := answers(dig(t, ub, "www.allowed.test", "TYPE65"), "HTTPS"); len(got) == 0 {
			t.Fatalf("unbound did not serve the HTTPS record: the test would prove nothing")
		}
		out := dig(t, e.addr, "www.allowed.test", "TYPE65")
		if status(out) != "NOERROR" || strings.Contains(out, "alpn") || len(answers(out, "HTTPS")) != 0 {
			t.Errorf("dig www.allowed.test HTTPS: status %s, want NOERROR with no HTTPS record\n%s", status(out), out)
		}
	})
	t.Run("rebinding refused", func(t *testing.T) {
		out := dig(t, e.addr, "local.allowed.test", "A")
		if status(out) != "NXDOMAIN" || len(answers(out, "A")) != 0 {
			t.Errorf("dig local.allowed.test A: status %s, want NXDOMAIN\n%s", status(out), out)
		}
	})
	t.Run("private zone", func(t *testing.T) {
		out := dig(t, e.addr, "acr.privatelink.test", "A")
		if got := answers(out, "A"); fmt.Sprint(got) != "[10.1.2.3]" || !strings.Contains(out, " aa ") {
			t.Errorf("dig acr.privatelink.test A: answers %v, want [10.1.2.3] with aa\n%s", got, out)
		}
		if out := dig(t, e.addr, "nope.privatelink.test", "A"); status(out) != "NXDOMAIN" {
			t.Errorf("dig nope.privatelink.test: status %s, want NXDOMAIN", status(out))
		}
	})
	t.Run("TCP fallback on truncation", func(t *testing.T) {
		out := dig(t, e.addr, "+noedns", "big.allowed.test", "A")
		if !strings.Contains(out, "Truncated, retrying in TCP mode") || len(answers(out, "A")) != 60 {
			t.Errorf("dig +noedns big.allowed.test: want a TCP retry and 60 answers, got %d\n%s", len(answers(out, "A")), out)
		}
		out = dig(t, e.addr, "+tcp", "www.allowed.test", "A")
		if got := answers(out, "A"); fmt.Sprint(got) != "[1.2.3.4]" {
			t.Errorf("dig +tcp www.allowed.test: answers %v, want [1.2.3.4]\n%s", got, out)
		}
	})
	t.Run("kdig", func(t *testing.T) {
		if _, err := exec.LookPath("kdig"); err != nil {
			t.Skip("kdig not installed")
		}
		host, port, _ := net.SplitHostPort(e.addr)
		out, err := exec.Command("kdig", "@"+host, "-p", port, "+tcp", "www.allowed.test", "A").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "1.2.3.4") {
			t.Errorf("kdig +tcp www.allowed.test: %v\n%s", err, out)
		}
	})
	t.Run("observation expires after TTL plus grace", func(t *testing.T) {
		dig(t, e.addr, "short.allowed.test", "A") // TTL 60
		obs := e.srv.Observations()
		if got := obs.NamesFor(mustAddr("1.2.3.5"), e.clock.Now()); fmt.Sprint(got) != "[short.allowed.test]" {
			t.Errorf("NamesFor(1.2.3.5) = %v, want [short.allowed.test]", got)
		}
		if got := obs.NamesFor(mustAddr("1.2.3.5"), e.clock.Now().Add(121*time.Second)); len(got) != 0 {
			t.Errorf("NamesFor(1.2.3.5) after 60s TTL + 1m grace = %v, want none", got)
		}
	})
	t.Run("all forwarders down: stale, then SERVFAIL", func(t *testing.T) {
		stopUnbound()
		e.clock.Add(2 * time.Minute) // short.allowed.test (TTL 60) expired
		out := dig(t, e.addr, "short.allowed.test", "A")
		if got := answers(out, "A"); status(out) != "NOERROR" || fmt.Sprint(got) != "[1.2.3.5]" {
			t.Errorf("stale: status %s answers %v, want NOERROR [1.2.3.5]\n%s", status(out), got, out)
		}
		e.clock.Add(10 * time.Minute)
		out = dig(t, e.addr, "short.allowed.test", "A")
		if status(out) != "SERVFAIL" {
			t.Errorf("after staleFor: status %s, want SERVFAIL\n%s", status(out), out)
		}
	})
}
