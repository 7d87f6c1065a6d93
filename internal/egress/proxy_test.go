package egress

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/airlockdev/airlock/internal/netclass"
)

var loopbackRange = netclass.MustParseRanges("127.0.0.0/8")

func TestConnect(t *testing.T) {
	up := echoServer(t, "127.0.0.1:0", "up")
	port := up.Port()
	lo := netip.MustParseAddr("127.0.0.1")
	res := fakeResolver{
		"allowed.test":  {lo},
		"denied.test":   {lo},
		"metadata.test": {netip.MustParseAddr("169.254.169.254")},
		"v6only.test":   {netip.MustParseAddr("::1")},
	}
	tests := []struct {
		name     string
		cfg      Config
		netRule  bool
		target   string
		wantCode int
		reason   string // in the 403 body and the record
		verdict  string
		wouldDen bool
	}{
		{name: "allowed name", cfg: Config{AllowedInternalRanges: loopbackRange}, target: fmt.Sprintf("allowed.test:%d", port), wantCode: 200, reason: "rule_allow", verdict: "allow"},
		{name: "denied name", cfg: Config{AllowedInternalRanges: loopbackRange}, target: fmt.Sprintf("denied.test:%d", port), wantCode: 403, reason: "no_match", verdict: "deny"},
		{name: "allowed name on another port", cfg: Config{AllowedInternalRanges: loopbackRange}, target: fmt.Sprintf("allowed.test:%d", port+1), wantCode: 403, reason: "no_match", verdict: "deny"},
		{name: "allowed name resolving to loopback without allowedInternalRanges", target: fmt.Sprintf("allowed.test:%d", port), wantCode: 403, reason: "internal_address", verdict: "deny"},
		{name: "metadata address not covered by allowedInternalRanges", cfg: Config{AllowedInternalRanges: loopbackRange}, target: fmt.Sprintf("metadata.test:%d", port), wantCode: 403, reason: "internal_address", verdict: "deny"},
		{name: "IP literal without network rule", cfg: Config{AllowedInternalRanges: loopbackRange}, target: up.String(), wantCode: 403, reason: "sni_missing", verdict: "deny"},
		{name: "IP literal with network rule", netRule: true, target: up.String(), wantCode: 200, reason: "rule_allow", verdict: "allow"},
		{name: "IPv6 answer with allowIPv6 false", cfg: Config{AllowedInternalRanges: netclass.MustParseRanges("::1/128")}, target: fmt.Sprintf("v6only.test:%d", port), wantCode: 403, reason: "ipv6_disabled", verdict: "deny"},
		{name: "IPv6 literal with allowIPv6 false", netRule: true, target: fmt.Sprintf("[::1]:%d", port), wantCode: 403, reason: "sni_missing", verdict: "deny"},
		{name: "invalid name", cfg: Config{AllowedInternalRanges: loopbackRange}, target: fmt.Sprintf("bad_name!.test:%d", port), wantCode: 403, reason: "name_invalid", verdict: "deny"},
		{name: "report mode lets a denied name through", cfg: Config{Mode: ModeReport, AllowedInternalRanges: loopbackRange}, target: fmt.Sprintf("denied.test:%d", port), wantCode: 200, reason: "no_match", verdict: "deny", wouldDen: true},
		{name: "report mode keeps the address checks", cfg: Config{Mode: ModeReport}, target: fmt.Sprintf("denied.test:%d", port), wantCode: 403, reason: "internal_address", verdict: "deny"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var netAddr netip.Addr
			if tc.netRule {
				netAddr = lo
			}
			g := startGateway(t, gwOptions{cfg: tc.cfg, policy: appPolicy(port, netAddr, "allowed.test", "metadata.test", "v6only.test"), resolver: res})
			c, br, code, body := connect(t, g.proxy, tc.target)
			if code != tc.wantCode {
				t.Fatalf("CONNECT %s = %d %q, want %d", tc.target, code, body, tc.wantCode)
			}
			if code == 200 {
				expectEcho(t, c, br, "up", "hello")
				c.Close()
			} else if !strings.Contains(body, tc.reason) {
				t.Errorf("CONNECT %s body = %q, want the reason %s", tc.target, body, tc.reason)
			}
			r := g.logs.Wait(t, 1)[0]
			if r["reason"] != tc.reason || r["verdict"] != tc.verdict {
				t.Errorf("record verdict/reason = %v/%v, want %s/%s; record %v", r["verdict"], r["reason"], tc.verdict, tc.reason, r)
			}
			if got := r["would_deny"] == true; got != tc.wouldDen {
				t.Errorf("record would_deny = %v, want %v", got, tc.wouldDen)
			}
		})
	}
}

func TestConnectRecord(t *testing.T) {
	up := echoServer(t, "127.0.0.1:0", "up")
	g := allowedGateway(t, up)
	c, br, code, _ := connect(t, g.proxy, fmt.Sprintf("allowed.test:%d", up.Port()))
	if code != 200 {
		t.Fatalf("CONNECT = %d, want 200", code)
	}
	expectEcho(t, c, br, "up", "hello") // 6 bytes up; "id:up\n" + "hello\n" = 12 down
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, br)
	c.Close()
	r := g.logs.Wait(t, 1)[0]
	for _, k := range []string{"time", "src", "duration_ms"} {
		if _, ok := r[k]; !ok {
			t.Errorf("record has no %s: %v", k, r)
		}
	}
	for _, k := range []string{"time", "msg", "level", "src", "duration_ms"} {
		delete(r, k)
	}
	want := map[string]any{
		"listener": "proxy", "port": float64(up.Port()), "name": "allowed.test", "proto": "tcp", "app": "https",
		"verdict": "allow", "reason": "rule_allow", "type": "application", "group": "g", "collection": "web", "rule": "allowed",
		"mode": "enforce", "upstream": up.String(), "bytes_up": float64(6), "bytes_down": float64(12),
	}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("decision record (-want +got):\n%s", diff)
	}
	if got := g.logs.Records(t); len(got) != 1 {
		t.Errorf("records after the flow = %d, want exactly 1", len(got))
	}
}

func TestAbsoluteFormHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "host=%s uri=%s proxyhdr=%q body=%s", r.Host, r.RequestURI, r.Header.Get("Proxy-Connection"), body)
	})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	g := startGateway(t, gwOptions{
		cfg:      Config{AllowedInternalRanges: loopbackRange},
		policy:   appPolicy(uint16(port), netip.Addr{}, "allowed.test"),
		resolver: fakeResolver{"allowed.test": {netip.MustParseAddr("127.0.0.1")}, "denied.test": {netip.MustParseAddr("127.0.0.1")}},
	})
	do := func(method, host, body string) (int, string) {
		c, err := net.Dial("tcp", g.proxy)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "%s http://%s:%d/p?q=1 HTTP/1.1\r\nHost: %s:%d\r\nProxy-Connection: keep-alive\r\nContent-Length: %d\r\n\r\n%s", method, host, port, host, port, len(body), body)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s http://%s: %v", method, host, err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := do("POST", "allowed.test", "abc")
	want := fmt.Sprintf(`host=allowed.test:%d uri=/p?q=1 proxyhdr="" body=abc`, port)
	if code != 200 || body != want {
		t.Errorf("POST http://allowed.test = %d %q, want 200 %q", code, body, want)
	}
	code, body = do("GET", "denied.test", "")
	if code != 403 || !strings.Contains(body, "no_match") {
		t.Errorf("GET http://denied.test = %d %q, want 403 with no_match", code, body)
	}
	// The allowed flow's record may come after the denied one's: it is
	// written once its handler is done, after the client saw the answer.
	var rec map[string]any
	for _, r := range g.logs.Wait(t, 2) {
		if r["name"] == "allowed.test" {
			rec = r
		}
	}
	if rec["app"] != "http" || rec["verdict"] != "allow" || rec["bytes_down"] == float64(0) || rec["bytes_down"] == nil {
		t.Errorf("allowed.test record = %v, want app http, allow, bytes_down > 0", rec)
	}
}

func TestProxyMalformed(t *testing.T) {
	g := startGateway(t, gwOptions{policy: appPolicy(443, netip.Addr{}, "allowed.test"), resolver: fakeResolver{}})
	for _, req := range []string{
		"GET /origin-form HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT noport HTTP/1.1\r\n\r\n",
		"GET https://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
		"garbage\r\n\r\n",
	} {
		c, err := net.Dial("tcp", g.proxy)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, req)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil || resp.StatusCode != 400 {
			t.Errorf("proxy(%q) = %v, %v; want 400", req, resp, err)
		}
	}
	for _, r := range g.logs.Wait(t, 4) {
		if r["reason"] != "malformed" {
			t.Errorf("record reason = %v, want malformed", r["reason"])
		}
	}
}
