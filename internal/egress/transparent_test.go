package egress

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// identityServer serves HTTPS on addr, answering "I am <id>".
func identityServer(t *testing.T, addr, id string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("listen %s: %v", addr, err)
	}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "I am %s", id)
	}))
	s.Listener.Close()
	s.Listener = ln
	s.StartTLS()
	t.Cleanup(s.Close)
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// tlsGet sends an HTTPS GET through conn with the given SNI ("" for none)
// and returns the body.
func tlsGet(c net.Conn, sni string) (string, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return "", err
	}
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	b, err := io.ReadAll(tc)
	if i := strings.Index(string(b), "\r\n\r\n"); i >= 0 {
		b = b[i+4:]
	}
	return string(b), err
}

func TestTransparent(t *testing.T) {
	// Two HTTPS servers on the same port of two loopback addresses: the
	// allowed host and the denied one.
	allowed := identityServer(t, "127.0.0.2:0", "allowed")
	denied := identityServer(t, fmt.Sprintf("127.0.0.3:%d", allowed.Port()), "denied")
	var orig atomic.Pointer[netip.AddrPort]
	g := startGateway(t, gwOptions{
		cfg:    Config{AllowedInternalRanges: loopbackRange, HeadTimeout: 300 * time.Millisecond},
		policy: appPolicy(allowed.Port(), netip.Addr{}, "allowed.test"),
		resolver: fakeResolver{
			"allowed.test": {allowed.Addr()},
			"denied.test":  {denied.Addr()},
		},
		origDst: func(c *net.TCPConn) (netip.AddrPort, error) {
			if p := orig.Load(); p != nil {
				return *p, nil
			}
			return addrPortOf(c.LocalAddr()), nil
		},
	})
	type expect struct{ verdict, reason, name, dst, upstream string }
	want := map[string]expect{} // by the client's address, the record's src
	var current expect
	dial := func(dst netip.AddrPort) net.Conn {
		orig.Store(&dst)
		c, err := net.Dial("tcp", g.trans)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		want[c.LocalAddr().String()] = current
		return c
	}

	t.Run("allowed SNI", func(t *testing.T) {
		current = expect{"allow", "rule_allow", "allowed.test", allowed.String(), allowed.String()}
		c := dial(allowed)
		body, err := tlsGet(c, "allowed.test")
		c.Close()
		if err != nil || body != "I am allowed" {
			t.Errorf("GET with SNI allowed.test = %q, %v; want I am allowed", body, err)
		}
	})
	t.Run("allowed SNI aimed at the denied host's IP", func(t *testing.T) {
		current = expect{"allow", "rule_allow", "allowed.test", denied.String(), allowed.String()}
		c := dial(denied)
		body, err := tlsGet(c, "allowed.test")
		c.Close()
		if err != nil || body != "I am allowed" {
			t.Errorf("GET with SNI allowed.test to %s = %q, %v; want I am allowed", denied, body, err)
		}
	})
	t.Run("denied SNI", func(t *testing.T) {
		current = expect{"deny", "no_match", "denied.test", denied.String(), ""}
		if body, err := tlsGet(dial(denied), "denied.test"); err == nil {
			t.Errorf("GET with SNI denied.test = %q, want the connection closed", body)
		}
	})
	t.Run("missing SNI", func(t *testing.T) {
		current = expect{"deny", "sni_missing", "", allowed.String(), ""}
		if body, err := tlsGet(dial(allowed), ""); err == nil {
			t.Errorf("GET without SNI = %q, want the connection closed", body)
		}
	})
	t.Run("neither TLS nor HTTP", func(t *testing.T) {
		current = expect{"deny", "protocol_unknown", "", allowed.String(), ""}
		c := dial(allowed)
		c.Write([]byte{0, 1, 2, 3, 4, 5})
		expectClosed(t, c)
	})
	t.Run("slow loris", func(t *testing.T) {
		current = expect{"deny", "malformed", "", allowed.String(), ""}
		c := dial(allowed)
		c.Write([]byte{0x16, 0x03, 0x01}) // the start of a TLS record, then nothing
		start := time.Now()
		expectClosed(t, c)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("slow ClientHello cut after %v, want about the 300ms head timeout", d)
		}
	})
	recs := g.logs.Wait(t, 6)
	for i, r := range recs {
		str := func(k string) string { s, _ := r[k].(string); return s }
		w, ok := want[str("src")]
		if !ok {
			t.Errorf("record %d from an unknown client: %v", i, r)
			continue
		}
		delete(want, str("src"))
		if str("verdict") != w.verdict || str("reason") != w.reason || str("name") != w.name || str("dst") != w.dst || str("upstream") != w.upstream || str("listener") != "transparent" {
			t.Errorf("record %d = %v, want verdict %s reason %s name %q dst %s upstream %q", i, r, w.verdict, w.reason, w.name, w.dst, w.upstream)
		}
	}

	t.Run("not redirected", func(t *testing.T) {
		orig.Store(nil)
		c, err := net.Dial("tcp", g.trans)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		expectClosed(t, c)
		var m dto.Metric
		g.m.Refused.WithLabelValues("loop").Write(&m)
		if got := m.GetCounter().GetValue(); got != 1 {
			t.Errorf("refused{why=loop} = %v, want 1", got)
		}
		if n := len(g.logs.Records(t)); n != 6 {
			t.Errorf("decision records = %d, want still 6 (a refused loop is not a flow)", n)
		}
	})
}

func TestTransparentReportMode(t *testing.T) {
	allowed := identityServer(t, "127.0.0.2:0", "allowed")
	denied := identityServer(t, fmt.Sprintf("127.0.0.3:%d", allowed.Port()), "denied")
	g := startGateway(t, gwOptions{
		cfg:      Config{Mode: ModeReport, AllowedInternalRanges: loopbackRange},
		policy:   appPolicy(allowed.Port(), netip.Addr{}, "allowed.test"),
		resolver: fakeResolver{"allowed.test": {allowed.Addr()}, "denied.test": {denied.Addr()}},
		origDst:  func(*net.TCPConn) (netip.AddrPort, error) { return denied, nil },
	})
	for _, sni := range []string{"denied.test", ""} {
		c, err := net.Dial("tcp", g.trans)
		if err != nil {
			t.Fatal(err)
		}
		body, err := tlsGet(c, sni)
		c.Close()
		if err != nil || body != "I am denied" {
			t.Errorf("report mode GET with SNI %q = %q, %v; want I am denied", sni, body, err)
		}
	}
	for _, r := range g.logs.Wait(t, 2) {
		if r["verdict"] != "deny" || r["would_deny"] != true || r["upstream"] != denied.String() {
			t.Errorf("report record = %v, want verdict deny, would_deny, upstream %s", r, denied)
		}
	}
}
