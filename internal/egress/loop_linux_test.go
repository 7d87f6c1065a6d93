//go:build linux

package egress

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// loopGateway is allowedGateway on the event-loop engine, whatever
// AIRLOCK_TEST_PROXY_ENGINE says.
func loopGateway(t *testing.T, up netip.AddrPort, cfg Config, addrs ...netip.Addr) *gw {
	t.Helper()
	cfg.AllowedInternalRanges = loopbackRange
	cfg.ProxyEngine = EngineLoop
	if len(addrs) == 0 {
		addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	g := startGateway(t, gwOptions{
		cfg:      cfg,
		policy:   appPolicy(up.Port(), netip.Addr{}, "allowed.test"),
		resolver: fakeResolver{"allowed.test": addrs},
	})
	// ServeProxy registers its loops before it accepts: a first tunnel
	// proves they are up.
	c, _, code, _ := connect(t, g.proxy, fmt.Sprintf("allowed.test:%d", up.Port()))
	c.Close()
	g.srv.mu.Lock()
	n := len(g.srv.loops)
	g.srv.mu.Unlock()
	if n == 0 {
		t.Fatalf("the gateway runs no event loop (first CONNECT: %d)", code)
	}
	g.logs.Wait(t, 1)
	g.logs.Reset()
	return g
}

// dialProxy connects to the proxy, closed when the test ends.
func dialProxy(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestLoopRelaysBulkInTheLoop: with the hand-off to the relay engine out
// of reach, 16 MiB each way cross the loop's own read/write path, partial
// writes and EPOLLOUT included.
func TestLoopRelaysBulkInTheLoop(t *testing.T) {
	old := bulkHandoff
	bulkHandoff = 1 << 62
	t.Cleanup(func() { bulkHandoff = old })
	engineUnderTest = EngineLoop
	t.Cleanup(func() { engineUnderTest = "" })
	relayBulkBothWays(t)
}

// TestLoopHeadInPiecesAndEarlyData: a head that arrives a few bytes at a
// time, with the first tunnel bytes in the same write as its end, is read
// whole and those bytes reach the upstream first.
func TestLoopHeadInPiecesAndEarlyData(t *testing.T) {
	up := echoServer(t, "127.0.0.1:0", "up")
	g := loopGateway(t, up, Config{})
	c := dialProxy(t, g.proxy)
	head := fmt.Sprintf("CONNECT allowed.test:%d HTTP/1.1\r\nHost: x\r\n\r\nearly", up.Port())
	for i := 0; i < len(head); i += 7 {
		io.WriteString(c, head[i:min(i+7, len(head))])
		time.Sleep(time.Millisecond)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT = %v, %v; want 200", resp, err)
	}
	want := "id:up\nearly"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("echo = %q, %v; want %q", got, err, want)
	}
}

// TestLoopHeadTimeout: a client that stops halfway through its head gets
// 400 at headTimeout and a malformed record.
func TestLoopHeadTimeout(t *testing.T) {
	up := echoServer(t, "127.0.0.1:0", "up")
	g := loopGateway(t, up, Config{HeadTimeout: 200 * time.Millisecond})
	c := dialProxy(t, g.proxy)
	io.WriteString(c, "CONNECT allowed.test:1 HTTP/1.1\r\nHo")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("slow head = %v, %v; want 400", resp, err)
	}
	r := g.logs.Wait(t, 1)[0]
	if r["reason"] != "malformed" || !strings.Contains(fmt.Sprint(r["error"]), "timeout") {
		t.Errorf("record = %v, want reason malformed and a timeout error", r)
	}
}

// TestLoopHeadTooLarge: a head past maxProxyHead gets 400.
func TestLoopHeadTooLarge(t *testing.T) {
	up := echoServer(t, "127.0.0.1:0", "up")
	g := loopGateway(t, up, Config{})
	c := dialProxy(t, g.proxy)
	go io.WriteString(c, "CONNECT allowed.test:1 HTTP/1.1\r\nX: "+strings.Repeat("a", maxProxyHead))
	c.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("huge head = %v, %v; want 400", resp, err)
	}
	if r := g.logs.Wait(t, 1)[0]; !strings.Contains(fmt.Sprint(r["error"]), "too large") {
		t.Errorf("record = %v, want a too-large error", r)
	}
}

// TestLoopDialsTheNextAddress: a name's first address refuses the
// connect; the loop dials the next and records it as the upstream.
func TestLoopDialsTheNextAddress(t *testing.T) {
	up := echoServer(t, "127.0.0.1:0", "up")
	g := loopGateway(t, up, Config{}, netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.1"))
	c, br, code, _ := connect(t, g.proxy, fmt.Sprintf("allowed.test:%d", up.Port()))
	if code != 200 {
		t.Fatalf("CONNECT = %d, want 200", code)
	}
	expectEcho(t, c, br, "up", "hello")
	c.Close()
	if r := g.logs.Wait(t, 1)[0]; r["upstream"] != up.String() {
		t.Errorf("record upstream = %v, want %s", r["upstream"], up)
	}
}

// TestLoopUpstreamRefused: every address refuses: 502 and the connect
// error in the record.
func TestLoopUpstreamRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close() // nothing listens there now
	g := loopGateway(t, up, Config{})
	_, _, code, _ := connect(t, g.proxy, fmt.Sprintf("allowed.test:%d", up.Port()))
	if code != 502 {
		t.Fatalf("CONNECT to a closed port = %d, want 502", code)
	}
	if r := g.logs.Wait(t, 1)[0]; !strings.Contains(fmt.Sprint(r["error"]), "connection refused") || r["verdict"] != "allow" {
		t.Errorf("record = %v, want allow and connection refused", r)
	}
}

// TestLoopManyTunnels: tunnels opened together from many clients are all
// relayed and all recorded, and the loops hold none afterwards.
func TestLoopManyTunnels(t *testing.T) {
	up := echoServer(t, "127.0.0.1:0", "up")
	g := loopGateway(t, up, Config{})
	const n = 200
	errs := make(chan error, n)
	for i := range n {
		go func() {
			c, err := net.Dial("tcp", g.proxy)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "CONNECT allowed.test:%d HTTP/1.1\r\n\r\n", up.Port())
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
			if err != nil || resp.StatusCode != 200 {
				errs <- fmt.Errorf("CONNECT %d: %v, %v", i, resp, err)
				return
			}
			msg := fmt.Sprintf("message %d\n", i)
			io.WriteString(c, msg)
			want := "id:up\n" + msg
			got := make([]byte, len(want))
			if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
				errs <- fmt.Errorf("tunnel %d: %q, %v", i, got, err)
				return
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if recs := g.logs.Wait(t, n); len(recs) != n {
		t.Errorf("records = %d, want %d", len(recs), n)
	}
	if got := testutilGauge(g.m); got != 0 {
		t.Errorf("active tunnels = %v, want 0", got)
	}
}

// FuzzProxyHead: headEnd finds exactly the head http.ReadRequest reads,
// and the loop's parse of a head never fails where the goroutine path's
// succeeds.
func FuzzProxyHead(f *testing.F) {
	f.Add([]byte("CONNECT a.test:443 HTTP/1.1\r\nHost: a.test\r\n\r\nrest"))
	f.Add([]byte("CONNECT a.test:443 HTTP/1.1\n\n"))
	f.Add([]byte("CONNECT [::1]:443 HTTP/1.0\r\nA: b\r\n c\r\n\r\n"))
	f.Add([]byte("CONNECT x\r\n\r"))
	f.Fuzz(func(t *testing.T, b []byte) {
		end := headEnd(b)
		br := bufio.NewReaderSize(strings.NewReader(string(b)), maxProxyHead+len(b))
		req, err := http.ReadRequest(br)
		if end < 0 {
			if err == nil {
				t.Fatalf("headEnd(%q) = -1, but ReadRequest read a head", b)
			}
			return
		}
		if end > len(b) {
			t.Fatalf("headEnd(%q) = %d, past the input", b, end)
		}
		lr := bufio.NewReader(strings.NewReader(string(b[:end])))
		lreq, lerr := http.ReadRequest(lr)
		if (err == nil) != (lerr == nil) {
			t.Fatalf("ReadRequest of the whole input: %v; of the head headEnd found: %v (%q)", err, lerr, b)
		}
		if err == nil {
			if consumed := len(b) - br.Buffered(); consumed != end {
				t.Fatalf("ReadRequest consumed %d bytes, headEnd says %d (%q)", consumed, end, b)
			}
			if req.Method != lreq.Method || req.RequestURI != lreq.RequestURI {
				t.Fatalf("requests differ: %s %s vs %s %s", req.Method, req.RequestURI, lreq.Method, lreq.RequestURI)
			}
		}
	})
}

// heldResolver is a CachedResolver: held names answer from CachedNetIP,
// every other through LookupNetIP, which it counts.
type heldResolver struct {
	held    map[string][]netip.Addr
	all     fakeResolver
	lookups atomic.Int32
}

func (r *heldResolver) CachedNetIP(_, host string) ([]netip.Addr, bool) {
	a, ok := r.held[host]
	return a, ok
}

func (r *heldResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.lookups.Add(1)
	return r.all.LookupNetIP(ctx, network, host)
}

// TestLoopResolvesHeldNamesInline: a name the resolver holds (airlock
// DNS's zones and cache) is dialled without a lookup; another is looked up
// once.
func TestLoopResolvesHeldNamesInline(t *testing.T) {
	up := echoServer(t, "127.0.0.1:0", "up")
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	r := &heldResolver{held: map[string][]netip.Addr{"allowed.test": lo}, all: fakeResolver{"allowed.test": lo, "other.test": lo}}
	g := startGateway(t, gwOptions{
		cfg:    Config{AllowedInternalRanges: loopbackRange, ProxyEngine: EngineLoop},
		policy: appPolicy(up.Port(), netip.Addr{}, "allowed.test", "other.test"),
		res:    r,
	})
	for _, name := range []string{"allowed.test", "other.test"} {
		c, br, code, _ := connect(t, g.proxy, fmt.Sprintf("%s:%d", name, up.Port()))
		if code != 200 {
			t.Fatalf("CONNECT %s = %d, want 200", name, code)
		}
		expectEcho(t, c, br, "up", "hello")
		c.Close()
	}
	g.logs.Wait(t, 2)
	if n := r.lookups.Load(); n != 1 {
		t.Errorf("LookupNetIP calls = %d, want 1 (other.test only)", n)
	}
	g.srv.mu.Lock()
	loops := len(g.srv.loops)
	g.srv.mu.Unlock()
	if loops == 0 {
		t.Error("the gateway runs no event loop")
	}
}
