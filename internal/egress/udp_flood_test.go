package egress

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// floodFrom sends one datagram to dst from each of ports fresh sockets
// on src (127.0.0.0/8 addresses all work on Linux loopback) and returns
// the sockets, kept open so their ports stay distinct.
func floodFrom(t *testing.T, src string, ports int, dst netip.AddrPort) []*net.UDPConn {
	t.Helper()
	var cs []*net.UDPConn
	for range ports {
		c := udpFrom(t, src)
		if _, err := c.WriteToUDPAddrPort([]byte("flood"), dst); err != nil {
			t.Fatalf("flood from %s: %v", src, err)
		}
		cs = append(cs, c)
	}
	return cs
}

// askMany sends n requests to dst, each from a fresh socket on src (as an
// NTP client does), and returns how many were answered. The sockets stay
// open until all are asked, so each request has its own source port: a
// closed socket's port could be handed out again and its request taken
// by the earlier flow, one flow fewer than the test counts.
func askMany(t *testing.T, src string, n int, dst netip.AddrPort) int {
	t.Helper()
	answered := 0
	for i := range n {
		c := udpFrom(t, src)
		defer c.Close()
		msg := fmt.Sprintf("ntp?%d", i)
		if got, err := udpAsk(c, dst, msg, time.Second); err == nil && got == "echo:"+msg {
			answered++
		}
	}
	return answered
}

// A flood of denied datagrams from one source, from 128 source ports,
// leaves another source's allowed flows working: denies hold no flow
// slot.
func TestUDPFloodDenied(t *testing.T) {
	backend := udpEcho(t, "127.0.0.1:0")
	g := startUDPDNAT(t, Config{UDPMaxFlows: 64}, backend, "127.0.0.1")
	// 127.0.0.3 is not in the rule. The listener reads in order, so the
	// flood is taken in before the first request.
	floodFrom(t, "127.0.0.3", 128, g.listen)
	if got := askMany(t, "127.0.0.1", 16, g.listen); got != 16 {
		t.Errorf("127.0.0.1's requests answered after a denied flood from 127.0.0.3 = %d/16, want 16/16", got)
	}
	if got := testutil.ToFloat64(g.m.UDPFlows); got != 16 {
		t.Errorf("udp flows gauge = %v, want 16 (127.0.0.1's; the denies hold none)", got)
	}
	// One deny for the client and destination, whatever the source port.
	if recs := g.logs.Wait(t, 1); recs[0]["verdict"] != "deny" {
		t.Errorf("record = %v, want the deny of 127.0.0.3", recs[0])
	}
	if got := testutil.ToFloat64(g.m.UDPDropped.WithLabelValues(udpDropDenied)); got != 127 {
		t.Errorf("dropped{denied} = %v, want 127", got)
	}
}

// A flood of allowed flows from one source, from 128 source ports, takes
// no more than that source's share: another source's flows still open.
func TestUDPFloodAllowed(t *testing.T) {
	backend := udpEcho(t, "127.0.0.1:0")
	g := startUDPDNAT(t, Config{UDPMaxFlows: 64}, backend, "127.0.0.1", "127.0.0.2")
	floodFrom(t, "127.0.0.2", 128, g.listen)
	if got := askMany(t, "127.0.0.1", 16, g.listen); got != 16 {
		t.Errorf("127.0.0.1's requests answered after an allowed flood from 127.0.0.2 = %d/16, want 16/16", got)
	}
	// The listener reads in order: the flood was taken in before the
	// requests. 127.0.0.2's share of 64 flows is 16 (the least default).
	if got := testutil.ToFloat64(g.m.UDPDropped.WithLabelValues(udpDropSourceLimit)); got != 128-16 {
		t.Errorf("dropped{source_limit} = %v, want %d", got, 128-16)
	}
}

// A flow that gives way to another ends at once with its record, which
// says why; the eviction is counted.
func TestUDPEvictionRecord(t *testing.T) {
	backend := udpEcho(t, "127.0.0.1:0")
	g := startUDPDNAT(t, Config{UDPIdleTimeout: time.Hour, UDPMaxFlows: 2}, backend, "127.0.0.1", "127.0.0.2")
	for _, src := range []string{"127.0.0.2", "127.0.0.2", "127.0.0.1"} {
		c := udpFrom(t, src)
		if got, err := udpAsk(c, g.listen, "x", 2*time.Second); err != nil || got != "echo:x" {
			t.Errorf("udpAsk from %s = %q, %v; want echo:x", src, got, err)
		}
	}
	recs := g.logs.Wait(t, 1)
	r := recs[0]
	if src, _ := r["src"].(string); !strings.HasPrefix(src, "127.0.0.2:") || r["verdict"] != "allow" ||
		r["error"] != "udp flow ended to make room for a new one (table_full)" || r["bytes_down"] != float64(6) {
		t.Errorf("record of the evicted flow = %v; want 127.0.0.2's, allowed, 6 bytes down, error udp flow ended to make room for a new one (table_full)", r)
	}
	if got := testutil.ToFloat64(g.m.UDPEvicted.WithLabelValues(udpDropTableFull)); got != 1 {
		t.Errorf("evicted{table_full} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(g.m.UDPFlows); got != 2 {
		t.Errorf("udp flows gauge = %v, want 2", got)
	}
}
