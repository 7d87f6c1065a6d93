package relay

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// tcpPair returns the two ends of one loopback TCP connection.
func tcpPair(t *testing.T) (dialed, accepted *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan *net.TCPConn, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			got <- nil
			return
		}
		got <- c
	}()
	d, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	a := <-got
	if a == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { d.Close(); a.Close() })
	return d, a
}

// tunnelUnderTest is a relayed tunnel: client ⇄ [Engine] ⇄ server.
type tunnelUnderTest struct {
	client, server *net.TCPConn    // the test's ends
	gw             [2]*net.TCPConn // the Engine's ends: client side, server side
	done           chan Stats
}

func startTunnel(t *testing.T, e *Engine) *tunnelUnderTest {
	t.Helper()
	client, gwClient := tcpPair(t)
	gwUpstream, server := tcpPair(t)
	tu := &tunnelUnderTest{client: client, server: server, gw: [2]*net.TCPConn{gwClient, gwUpstream}, done: make(chan Stats, 1)}
	go e.Start(gwClient, gwUpstream, func(st Stats) { tu.done <- st })
	return tu
}

func (tu *tunnelUnderTest) wait(t *testing.T) Stats {
	t.Helper()
	select {
	case st := <-tu.done:
		return st
	case <-time.After(10 * time.Second):
		t.Fatal("the tunnel did not end")
		return Stats{}
	}
}

func newEngine(t *testing.T) *Engine {
	e := New(nil)
	t.Cleanup(e.Close)
	return e
}

// echo copies the server end back to itself until EOF, then half-closes.
func (tu *tunnelUnderTest) echo() {
	go func() {
		io.Copy(tu.server, tu.server)
		tu.server.CloseWrite()
	}()
}

// TestBulkBothWays sends more than the socket buffers hold through an
// echo while reading the echo at the same time: each direction must copy
// on its own, switch from copying to splicing, and count every byte; with
// the poller and without it (a closed Engine).
func TestBulkBothWays(t *testing.T) {
	for _, tc := range []struct {
		name   string
		closed bool
	}{{name: "poller"}, {name: "goroutines", closed: true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t)
			if tc.closed {
				e.Close()
			}
			tu := startTunnel(t, e)
			tu.echo()
			const size = 16 << 20
			payload := make([]byte, size)
			rand.Read(payload)
			tu.client.SetDeadline(time.Now().Add(30 * time.Second))
			werr := make(chan error, 1)
			go func() {
				// Small writes first (the copy step), then one large one (splice).
				for _, chunk := range [][]byte{payload[:10], payload[10:100], payload[100:]} {
					if _, err := tu.client.Write(chunk); err != nil {
						werr <- err
						return
					}
				}
				werr <- tu.client.CloseWrite()
			}()
			got, err := io.ReadAll(tu.client)
			if err != nil {
				t.Fatalf("reading the echo: %v", err)
			}
			if err := <-werr; err != nil {
				t.Fatalf("writing: %v", err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("echo = %d bytes, want %d (equal: false)", len(got), len(payload))
			}
			if st := tu.wait(t); st != (Stats{Up: size, Down: size}) {
				t.Errorf("Stats = %+v, want %d both ways", st, size)
			}
		})
	}
}

// TestHalfClose: the client ends its request with a half-close; the server
// answers only after EOF, and the answer still arrives.
func TestHalfClose(t *testing.T) {
	tu := startTunnel(t, newEngine(t))
	go func() {
		n, _ := io.Copy(io.Discard, tu.server)
		fmt.Fprintf(tu.server, "got %d", n)
		tu.server.Close()
	}()
	tu.client.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(tu.client, "12345")
	tu.client.CloseWrite()
	got, err := io.ReadAll(tu.client)
	if err != nil || string(got) != "got 5" {
		t.Errorf("answer after half-close = %q, %v; want %q", got, err, "got 5")
	}
	if st := tu.wait(t); st != (Stats{Up: 5, Down: 5}) {
		t.Errorf("Stats = %+v, want 5/5", st)
	}
}

// TestServerReset: a reset from the server ends the tunnel and closes
// the client.
func TestServerReset(t *testing.T) {
	tu := startTunnel(t, newEngine(t))
	go func() {
		buf := make([]byte, 4)
		io.ReadFull(tu.server, buf)
		tu.server.SetLinger(0) // close sends RST
		tu.server.Close()
	}()
	tu.client.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(tu.client, "ping")
	var ne net.Error
	if _, err := io.ReadAll(tu.client); errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("client read after the reset: %v, want EOF or reset", err)
	}
	if st := tu.wait(t); st.Up != 4 {
		t.Errorf("Stats.Up = %d, want 4", st.Up)
	}
}

// TestIdleTunnelsParked: idle tunnels hold no goroutine once parked,
// still relay bytes (from the poller), and end when their connections
// are closed elsewhere and the Engine is kicked.
func TestIdleTunnelsParked(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the tunnel poller is Linux only")
	}
	e := newEngine(t)
	// One tunnel first, so the poller's own goroutine is counted in base.
	first := startTunnel(t, e)
	time.Sleep(3 * HotIdle)
	base := runtime.NumGoroutine()
	const n = 100
	tus := make([]*tunnelUnderTest, n)
	for i := range tus {
		tus[i] = startTunnel(t, e)
	}
	var got int
	for range 500 {
		time.Sleep(10 * time.Millisecond)
		if got = runtime.NumGoroutine() - base; got < n/10 {
			break
		}
	}
	if got >= n/10 {
		t.Errorf("goroutines for %d idle tunnels = %d, want < %d", n, got, n/10)
	}
	// A parked tunnel relays both ways.
	tu := tus[0]
	tu.echo()
	tu.client.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(tu.client, "from the poller")
	buf := make([]byte, len("from the poller"))
	if _, err := io.ReadFull(tu.client, buf); err != nil || string(buf) != "from the poller" {
		t.Fatalf("echo through a parked tunnel = %q, %v", buf, err)
	}
	// A parked tunnel whose client hangs up ends.
	tu.client.Close()
	if st := tu.wait(t); st.Up != int64(len(buf)) || st.Down != int64(len(buf)) {
		t.Errorf("Stats = %+v, want %d both ways", st, len(buf))
	}
	// A parked tunnel whose sockets are closed by their owner (a server's
	// Shutdown at its deadline) raises no event: Kick ends it.
	first.gw[0].Close()
	first.gw[1].Close()
	for _, tu := range tus[1:] {
		tu.gw[0].Close()
		tu.gw[1].Close()
	}
	e.Kick()
	first.wait(t)
	for _, tu := range tus[1:] {
		tu.wait(t)
	}
}
