package verify

import (
	"context"
	"fmt"
	"github.com/airlockdev/airlock/internal/dnsserver"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const testTimeout = 700 * time.Millisecond

// runTest runs the battery on loopback: the node's resolver is res (via
// node.dns, with an empty root), and the fixed UDP and HTTP ports are
// replaced by ports nothing interesting listens on unless given.
func runTest(t *testing.T, tg Targets, res netip.AddrPort, ports fixedPorts) Report {
	t.Helper()
	if ports.udp == 0 {
		ports.udp = portOf(t, closedUDPPort(t))
	}
	if ports.http == 0 {
		ports.http = portOf(t, interceptor(t))
	}
	var nodeDNS []string
	if res.IsValid() {
		nodeDNS = []string{res.String()}
	}
	start := time.Now()
	rep, err := run(context.Background(), tg, Options{Root: t.TempDir(), NodeDNS: nodeDNS, Timeout: testTimeout}, ports)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if d := time.Since(start); d > positiveBudget*testTimeout+2*time.Second {
		t.Errorf("run took %s, want at most %s", d, positiveBudget*testTimeout+2*time.Second)
	}
	return rep
}

func rowOf(t *testing.T, rep Report, channel string) Row {
	t.Helper()
	for _, r := range rep.Rows {
		if r.Channel == channel {
			return r
		}
	}
	t.Fatalf("no row %q in %+v", channel, rep.Rows)
	return Row{}
}

func checkRow(t *testing.T, rep Report, channel string, want Outcome, evidence string) {
	t.Helper()
	r := rowOf(t, rep, channel)
	if r.Got != want || !strings.Contains(r.Evidence, evidence) {
		t.Errorf("%s = %s (%s), want %s with evidence containing %q", channel, r.Got, r.Evidence, want, evidence)
	}
}

func TestTCPToIP(t *testing.T) {
	denied := testCert(t, "denied.test")
	tests := []struct {
		name     string
		addr     func(t *testing.T) string
		want     Outcome
		evidence string
	}{
		{"TLS server answers", func(t *testing.T) string { return tlsServer(t, denied, nil) }, Leak, "TLS handshake completed"},
		{"RST to the SYN", closedPort, Leak, "connection refused"},
		{"intercepted and closed", interceptor, Blocked, "intercepted, closed without data"},
		{"held open in silence", holder, Leak, "held open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := runTest(t, Targets{DeniedAddress: tt.addr(t)}, netip.AddrPort{}, fixedPorts{})
			checkRow(t, rep, "tcp-ip", tt.want, tt.evidence)
		})
	}
}

func TestIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rep := runTest(t, Targets{DeniedAddress6: addr}, netip.AddrPort{}, fixedPorts{})
	checkRow(t, rep, "ipv6", Leak, "connection refused")
}

func TestAllowedSNIToDeniedIP(t *testing.T) {
	allowedCert, deniedCert := testCert(t, "allowed.test"), testCert(t, "denied.test")
	allowed := tlsServer(t, allowedCert, nil)
	res := dnsServer(t, map[string]string{"allowed.test.": "127.0.0.1"}, dns.RcodeNameError)
	allowedName := "allowed.test:" + strconv.Itoa(portOf(t, allowed))
	tests := []struct {
		name     string
		denied   func(t *testing.T) string
		want     Outcome
		evidence string
	}{
		{"the denied IP answers with its own certificate", func(t *testing.T) string { return tlsServer(t, deniedCert, nil) }, Leak, "differs from the allowed name's own"},
		{"the gateway forwards to the allowed host", func(t *testing.T) string { return forwarder(t, allowed) }, Blocked, "the gateway bound the name"},
		{"intercepted and closed", interceptor, Blocked, "intercepted"},
		{"RST", closedPort, Leak, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := Targets{DeniedAddress: tt.denied(t), AllowedName: allowedName, DeniedPort: uint16(portOf(t, interceptor(t)))}
			rep := runTest(t, tg, res, fixedPorts{})
			checkRow(t, rep, "tls-allowed-sni-denied-ip", tt.want, tt.evidence)
			checkRow(t, rep, "allowed-name", Reachable, "TLS handshake completed")
		})
	}
}

// forwarder relays every connection to to: a gateway that binds the SNI
// to the allowed host.
func forwarder(t *testing.T, to string) string {
	ln := listen(t)
	serveConns(t, ln, func(c net.Conn) {
		up, err := net.Dial("tcp", to)
		if err != nil {
			return
		}
		defer up.Close()
		go func() { io.Copy(up, c); up.Close() }()
		io.Copy(c, up)
	})
	return ln.Addr().String()
}

func TestAllowedNameDeniedPort(t *testing.T) {
	res := dnsServer(t, map[string]string{"allowed.test.": "127.0.0.1"}, dns.RcodeNameError)
	allowed := tlsServer(t, testCert(t, "allowed.test"), nil)
	tests := []struct {
		name     string
		port     func(t *testing.T) string
		want     Outcome
		evidence string
	}{
		{"RST on the denied port", closedPort, Leak, "connection refused"},
		{"intercepted", interceptor, Blocked, "intercepted"},
		{"a server on the denied port", func(t *testing.T) string { return tlsServer(t, testCert(t, "allowed.test"), nil) }, Leak, "TLS handshake completed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := Targets{AllowedName: "allowed.test:" + strconv.Itoa(portOf(t, allowed)), DeniedPort: uint16(portOf(t, tt.port(t)))}
			rep := runTest(t, tg, res, fixedPorts{})
			checkRow(t, rep, "allowed-name-denied-port", tt.want, tt.evidence)
		})
	}
	t.Run("the allowed name does not resolve", func(t *testing.T) {
		tg := Targets{AllowedName: "missing.test:443", DeniedPort: 1}
		rep := runTest(t, tg, res, fixedPorts{})
		checkRow(t, rep, "allowed-name-denied-port", NotTested, "did not resolve")
		checkRow(t, rep, "allowed-name", Failed, "NXDOMAIN")
		if rep.Verdict() != PositiveFailed {
			t.Errorf("Verdict() = %v, want PositiveFailed", rep.Verdict())
		}
	})
}

func TestDeniedNameThroughNodeResolver(t *testing.T) {
	tests := []struct {
		name     string
		records  map[string]string
		rcode    int
		want     Outcome
		evidence string
	}{
		{"NXDOMAIN", nil, dns.RcodeNameError, Blocked, "NXDOMAIN, no records"},
		{"REFUSED", nil, dns.RcodeRefused, Blocked, "REFUSED"},
		{"records", map[string]string{"exfil.test.": "192.0.2.9"}, dns.RcodeNameError, Leak, "NOERROR with 1 records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := dnsServer(t, tt.records, tt.rcode)
			rep := runTest(t, Targets{DeniedName: "exfil.test"}, res, fixedPorts{})
			checkRow(t, rep, "dns-denied-name-a", tt.want, tt.evidence)
			checkRow(t, rep, "dns-denied-name-txt", tt.want, tt.evidence)
			if !strings.Contains(rep.Resolver, res.String()) {
				t.Errorf("Resolver = %q, want it to name %s", rep.Resolver, res)
			}
		})
	}
	t.Run("no resolver", func(t *testing.T) {
		rep := runTest(t, Targets{DeniedName: "exfil.test"}, netip.AddrPort{}, fixedPorts{})
		checkRow(t, rep, "dns-denied-name-a", NotTested, "no resolver")
	})
	t.Run("resolver silent", func(t *testing.T) {
		rep := runTest(t, Targets{DeniedName: "exfil.test"}, netip.MustParseAddrPort(closedUDPPort(t)), fixedPorts{})
		checkRow(t, rep, "dns-denied-name-a", NotTested, "did not answer")
	})
}

func TestOutsideResolver(t *testing.T) {
	node := dnsServer(t, nil, dns.RcodeNameError)
	tests := []struct {
		name     string
		outside  func(t *testing.T) string
		denied   string
		want     Outcome
		evidence string
		wantTCP  Outcome
		evidTCP  string
	}{
		{"answers records", func(t *testing.T) string {
			return dnsServer(t, map[string]string{"exfil.test.": "192.0.2.9"}, dns.RcodeNameError).String()
		}, "exfil.test", Leak, "NOERROR with 1 records", Leak, "NOERROR with 1 records"},
		{"answers SERVFAIL", func(t *testing.T) string { return dnsServer(t, nil, dns.RcodeServerFailure).String() },
			"exfil.test", Leak, "SERVFAIL", Leak, "SERVFAIL"},
		{"answers NXDOMAIN for the canary name", func(t *testing.T) string { return dnsServer(t, nil, dns.RcodeNameError).String() },
			"", Leak, "NXDOMAIN", Leak, "NXDOMAIN"},
		{"redirected to airlock DNS", func(t *testing.T) string { return airlockDNSServer(t).String() },
			"exfil.test", Blocked, "redirected to airlock DNS", Blocked, "redirected to airlock DNS"},
		// The same NXDOMAIN the node's resolver gives, but not marked as
		// airlock's refusal: the query name reached the outside.
		{"answers NXDOMAIN like the node's resolver", func(t *testing.T) string { return dnsServer(t, nil, dns.RcodeNameError).String() },
			"exfil.test", Leak, "NXDOMAIN", Leak, "NXDOMAIN"},
		{"nothing listens", func(t *testing.T) string { return closedUDPPort(t) }, "", Leak, "connection refused", Leak, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := runTest(t, Targets{OutsideResolver: tt.outside(t), DeniedName: tt.denied}, node, fixedPorts{})
			checkRow(t, rep, "dns-outside-udp", tt.want, tt.evidence)
			checkRow(t, rep, "dns-outside-tcp", tt.wantTCP, tt.evidTCP)
		})
	}
	t.Run("intercepted TCP", func(t *testing.T) {
		rep := runTest(t, Targets{OutsideResolver: interceptor(t)}, node, fixedPorts{})
		checkRow(t, rep, "dns-outside-tcp", Blocked, "intercepted")
	})
}

func TestUDP443(t *testing.T) {
	tests := []struct {
		name     string
		port     func(t *testing.T) string
		want     Outcome
		evidence string
	}{
		{"echo", udpEcho, Leak, "answered with a datagram of 1200 bytes"},
		{"port unreachable", closedUDPPort, Leak, "connection refused"},
		{"silence", silentUDP, Blocked, "no answer within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := runTest(t, Targets{DeniedAddress: closedPort(t)}, netip.AddrPort{}, fixedPorts{udp: portOf(t, tt.port(t))})
			checkRow(t, rep, "udp-443", tt.want, tt.evidence)
		})
	}
}

// silentUDP is a bound UDP port that never answers.
func silentUDP(t *testing.T) string {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().String()
}

func TestQUICProbeShape(t *testing.T) {
	p := quicProbe()
	if len(p) != quicInitialSize {
		t.Errorf("len(quicProbe()) = %d, want %d", len(p), quicInitialSize)
	}
	if p[0]&0xf0 != 0xc0 {
		t.Errorf("first byte = %#x, want a long-header Initial (0xc_)", p[0])
	}
	if v := uint32(p[1])<<24 | uint32(p[2])<<16 | uint32(p[3])<<8 | uint32(p[4]); v&0x0f0f0f0f != 0x0a0a0a0a {
		t.Errorf("version = %#x, want a reserved 0x?a?a?a?a version", v)
	}
}

func TestMetadataAndHTTPLiteral(t *testing.T) {
	t.Run("metadata answers", func(t *testing.T) {
		rep := runTest(t, Targets{MetadataAddress: httpServer(t)}, netip.AddrPort{}, fixedPorts{})
		checkRow(t, rep, "metadata", Leak, "HTTP answer: HTTP/1.1 200 OK")
	})
	t.Run("metadata intercepted", func(t *testing.T) {
		rep := runTest(t, Targets{MetadataAddress: interceptor(t)}, netip.AddrPort{}, fixedPorts{})
		checkRow(t, rep, "metadata", Blocked, "intercepted")
	})
	t.Run("IP-literal Host answered", func(t *testing.T) {
		rep := runTest(t, Targets{DeniedAddress: closedPort(t)}, netip.AddrPort{}, fixedPorts{http: portOf(t, httpServer(t))})
		checkRow(t, rep, "http-ip-literal-host", Leak, "HTTP answer")
	})
	t.Run("IP-literal Host intercepted", func(t *testing.T) {
		rep := runTest(t, Targets{DeniedAddress: closedPort(t)}, netip.AddrPort{}, fixedPorts{})
		checkRow(t, rep, "http-ip-literal-host", Blocked, "intercepted")
	})
}

func TestDoH(t *testing.T) {
	var gotQuery *dns.Msg
	doh := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q := new(dns.Msg)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/dns-message" || q.Unpack(body) != nil {
			http.Error(w, "bad query", http.StatusBadRequest)
			return
		}
		gotQuery = q
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeNameError)
		out, _ := m.Pack()
		w.Header().Set("Content-Type", "application/dns-message")
		w.Write(out)
	})
	srv := tlsServer(t, testCert(t, "doh.test"), doh)
	res := dnsServer(t, map[string]string{"doh.test.": "127.0.0.1"}, dns.RcodeNameError)
	tests := []struct {
		name     string
		url      string
		want     Outcome
		evidence string
	}{
		{"by IP", "https://" + srv + "/dns-query", Leak, "DoH answered: HTTP 200 OK, application/dns-message"},
		{"by name", "https://doh.test:" + strconv.Itoa(portOf(t, srv)) + "/dns-query", Leak, "DoH answered: HTTP 200"},
		{"intercepted", "https://" + interceptor(t) + "/dns-query", Blocked, "intercepted"},
		{"name does not resolve", "https://nodoh.test/dns-query", Blocked, "does not resolve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := runTest(t, Targets{DoHURL: tt.url}, res, fixedPorts{})
			checkRow(t, rep, "doh", tt.want, tt.evidence)
		})
	}
	if gotQuery == nil || gotQuery.Question[0].Name != unknownName {
		t.Errorf("DoH handler saw query %v, want a question for %s", gotQuery, unknownName)
	}
}

func TestICMPEchoLoopback(t *testing.T) {
	rep := runTest(t, Targets{DeniedAddress: "127.0.0.1:1"}, netip.AddrPort{}, fixedPorts{})
	r := rowOf(t, rep, "icmp-echo")
	switch r.Got {
	case Leak:
		if !strings.Contains(r.Evidence, "echo reply from 127.0.0.1") {
			t.Errorf("icmp-echo evidence = %q, want an echo reply from 127.0.0.1", r.Evidence)
		}
	case NotTested:
		if !strings.Contains(r.Evidence, "ping_group_range") {
			t.Errorf("icmp-echo not tested with evidence %q, want the reason (root or ping_group_range)", r.Evidence)
		}
	default:
		t.Errorf("icmp-echo to 127.0.0.1 = %s (%s), want LEAK (loopback answers) or not tested", r.Got, r.Evidence)
	}
}

func TestUnsetTargetsAreNotTested(t *testing.T) {
	rep := runTest(t, Targets{}, netip.AddrPort{}, fixedPorts{})
	for _, r := range rep.Rows {
		want := NotTested
		if r.Channel == "domain-fronting" {
			want = NotTestable
		}
		if r.Got != want {
			t.Errorf("%s = %s (%s), want %s", r.Channel, r.Got, r.Evidence, want)
		}
		if want == NotTested && !strings.HasPrefix(r.Evidence, "set verify.targets.") {
			t.Errorf("%s evidence = %q, want it to name the target to set", r.Channel, r.Evidence)
		}
	}
	if rep.Verdict() != Clean {
		t.Errorf("Verdict() = %v, want Clean", rep.Verdict())
	}
	checkRow(t, rep, "domain-fronting", NotTestable, "cannot be tested without TLS interception")
}

func TestClassifyErr(t *testing.T) {
	tests := []struct {
		err  error
		want Outcome
	}{
		{&net.OpError{Op: "dial", Err: fmt.Errorf("connect: %w", errnoRefused)}, Leak},
		{&net.OpError{Op: "dial", Err: fmt.Errorf("connect: %w", errnoPerm)}, Blocked},
		{&net.OpError{Op: "dial", Err: fmt.Errorf("connect: %w", errnoAccess)}, Blocked},
		{&net.OpError{Op: "dial", Err: fmt.Errorf("connect: %w", errnoNetUnreach)}, Blocked},
		{&net.OpError{Op: "dial", Err: fmt.Errorf("connect: %w", errnoHostUnreach)}, Blocked},
		{context.DeadlineExceeded, Blocked},
		{context.Canceled, NotTested},
		{io.ErrShortBuffer, NotTested},
	}
	for _, tt := range tests {
		if got, ev := classifyErr(tt.err, time.Second); got != tt.want {
			t.Errorf("classifyErr(%v) = %s (%s), want %s", tt.err, got, ev, tt.want)
		}
	}
}

// airlockDNSServer answers every query the way airlock DNS answers a
// policy denial: NXDOMAIN with Extended DNS Error 15 "airlock: no_match"
// when the query has EDNS0 (internal/dnsserver's markBlocked).
func airlockDNSServer(t *testing.T) netip.AddrPort {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Rcode = dns.RcodeNameError
		if q.IsEdns0() != nil {
			m.SetEdns0(1232, false)
			opt := m.IsEdns0()
			opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: "airlock: no_match"})
		}
		w.WriteMsg(m)
	})
	return serveDNS(t, h)
}

// verify recognises airlock DNS's refusal by the text airlock DNS writes.
func TestAirlockEDEPrefix(t *testing.T) {
	if airlockEDEPrefix != dnsserver.EDEPrefix {
		t.Errorf("airlockEDEPrefix = %q, dnsserver.EDEPrefix = %q: keep them equal", airlockEDEPrefix, dnsserver.EDEPrefix)
	}
}
