package egress

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/relay"
)

// holdServer accepts connections and keeps them open without a goroutine
// each, so that goroutines counted while tunnels idle are the gateway's.
func holdServer(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func TestIdleTunnelsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the tunnel poller is Linux only")
	}
	up := holdServer(t)
	g := allowedGateway(t, up)
	target := fmt.Sprintf("allowed.test:%d", up.Port())
	// One tunnel first, so the poller's own goroutine is counted in base.
	if _, _, code, _ := connect(t, g.proxy, target); code != 200 {
		t.Fatalf("CONNECT = %d, want 200", code)
	}
	time.Sleep(50 * time.Millisecond)
	base := runtime.NumGoroutine()
	const n = 100
	for i := range n {
		if _, _, code, _ := connect(t, g.proxy, target); code != 200 {
			t.Fatalf("tunnel %d: CONNECT = %d, want 200", i, code)
		}
	}
	var got int
	// Each direction waits relay.HotIdle for bytes, then hands its socket to the
	// poller and its goroutine ends.
	for range 500 {
		time.Sleep(10 * time.Millisecond)
		if got = runtime.NumGoroutine() - base; got < n/10 {
			break
		}
	}
	if got >= n/10 {
		t.Errorf("goroutines for %d idle tunnels = %d, want < %d", n, got, n/10)
	}
	if g := testutilGauge(g.m); g != n+1 {
		t.Errorf("active tunnels = %v, want %d", g, n+1)
	}
}

// TestRelayBulkBothWays sends more than the socket buffers hold through an
// echo upstream while reading the echo at the same time: each direction
// must copy on its own (no direction may wait for the other), switch to
// splicing, and count every byte.
func TestRelayBulkBothWays(t *testing.T) { relayBulkBothWays(t) }

// relayBulkBothWays sends 16 MiB through an echo and checks every byte
// and the record's counts.
func relayBulkBothWays(t *testing.T) {
	up := echoServer(t, "127.0.0.1:0", "up")
	g := allowedGateway(t, up)
	c, br, code, _ := connect(t, g.proxy, fmt.Sprintf("allowed.test:%d", up.Port()))
	if code != 200 {
		t.Fatalf("CONNECT = %d, want 200", code)
	}
	const size = 16 << 20
	payload := make([]byte, size)
	rand.Read(payload)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	werr := make(chan error, 1)
	go func() {
		// Small writes first (the copy path), then one large one (splice).
		for _, chunk := range [][]byte{payload[:10], payload[10:100], payload[100:]} {
			if _, err := c.Write(chunk); err != nil {
				werr <- err
				return
			}
		}
		werr <- c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("writing: %v", err)
	}
	want := append([]byte("id:up\n"), payload...)
	if !bytes.Equal(got, want) {
		t.Fatalf("echo = %d bytes, want %d (equal: false)", len(got), len(want))
	}
	c.Close()
	r := g.logs.Wait(t, 1)[0]
	if r["bytes_up"] != float64(size) || r["bytes_down"] != float64(len(want)) {
		t.Errorf("record bytes up/down = %v/%v, want %d/%d", r["bytes_up"], r["bytes_down"], size, len(want))
	}
}

// TestRelayHalfClose: the client ends its request with a half-close; the
// upstream answers only after EOF, and the answer still arrives.
func TestRelayHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintf(c, "got %d", n)
	}()
	up := ln.Addr().(*net.TCPAddr).AddrPort()
	g := allowedGateway(t, up)
	c, br, code, _ := connect(t, g.proxy, fmt.Sprintf("allowed.test:%d", up.Port()))
	if code != 200 {
		t.Fatalf("CONNECT = %d, want 200", code)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "12345")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(br)
	if err != nil || string(got) != "got 5" {
		t.Errorf("answer after half-close = %q, %v; want %q", got, err, "got 5")
	}
	r := g.logs.Wait(t, 1)[0]
	if r["bytes_up"] != float64(5) || r["bytes_down"] != float64(5) {
		t.Errorf("record bytes up/down = %v/%v, want 5/5", r["bytes_up"], r["bytes_down"])
	}
}

// TestRelayUpstreamReset: a reset upstream ends the tunnel and closes the
// client, and the flow is recorded.
func TestRelayUpstreamReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 4)
		io.ReadFull(c, buf)
		c.(*net.TCPConn).SetLinger(0) // close sends RST
		c.Close()
	}()
	up := ln.Addr().(*net.TCPAddr).AddrPort()
	g := allowedGateway(t, up)
	c, br, code, _ := connect(t, g.proxy, fmt.Sprintf("allowed.test:%d", up.Port()))
	if code != 200 {
		t.Fatalf("CONNECT = %d, want 200", code)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "ping")
	var ne net.Error
	if _, err := io.ReadAll(br); errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("client read after the upstream reset: %v, want EOF or reset", err)
	}
	r := g.logs.Wait(t, 1)[0]
	if r["bytes_up"] != float64(4) {
		t.Errorf("record bytes_up = %v, want 4", r["bytes_up"])
	}
	if got := testutilGauge(g.m); got != 0 {
		t.Errorf("active tunnels after the reset = %v, want 0", got)
	}
}

// TestShutdownDeadlineEndsPolledTunnels: a tunnel idle long enough to sit
// in the poller (no goroutine) still ends when Shutdown's deadline closes
// its connections, and is recorded.
func TestShutdownDeadlineEndsPolledTunnels(t *testing.T) {
	up := echoServer(t, "127.0.0.1:0", "up")
	g := allowedGateway(t, up)
	c, br, code, _ := connect(t, g.proxy, fmt.Sprintf("allowed.test:%d", up.Port()))
	if code != 200 {
		t.Fatalf("CONNECT = %d", code)
	}
	expectEcho(t, c, br, "up", "one")
	time.Sleep(3 * relay.HotIdle)
	expectEcho2(t, c, br, "from the poller")
	time.Sleep(3 * relay.HotIdle)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := g.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want deadline exceeded", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(br); err != nil {
		t.Errorf("client read after forced shutdown: %v, want EOF", err)
	}
	r := g.logs.Wait(t, 1)[0]
	if r["bytes_up"] == float64(0) {
		t.Errorf("record = %v, want bytes counted", r)
	}
}
