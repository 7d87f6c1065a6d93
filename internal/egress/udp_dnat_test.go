package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/airlockdev/airlock/internal/policy"
)

// udpEcho answers every datagram with "echo:" and the datagram, from addr.
func udpEcho(t *testing.T, addr string) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, udpBufSize)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// udpFrom opens a client socket on src.
func udpFrom(t *testing.T, src string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpAsk sends msg to dst and returns the reply, or an error after wait.
func udpAsk(c *net.UDPConn, dst netip.AddrPort, msg string, wait time.Duration) (string, error) {
	if _, err := c.WriteToUDPAddrPort([]byte(msg), dst); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, udpBufSize)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return "", err
	}
	if udpAddrPort(from) != dst {
		return "", errors.New("reply from " + from.String() + ", not from " + dst.String())
	}
	return string(buf[:n]), nil
}

type udpDNATGateway struct {
	*gw
	listen netip.AddrPort
	cancel context.CancelFunc
	done   chan error
}

// startUDPDNAT serves UDP DNAT on a loopback port, forwarding sources in
// allowed to backend.
func startUDPDNAT(t *testing.T, cfg Config, backend netip.AddrPort, allowed ...string) *udpDNATGateway {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	listen := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pol := policy.Config{RuleCollectionGroups: []policy.RuleCollectionGroup{{Name: "g", Priority: 100, RuleCollections: []policy.RuleCollection{{
		Name: "inbound", Type: policy.TypeDNAT, Priority: 100, Action: policy.ActionAllow,
		Rules: []policy.Rule{{Name: "ntp", Protocols: []string{"UDP"}, SourceAddresses: allowed,
			DestinationAddresses: []string{listen.Addr().String()}, DestinationPorts: []string{strconv.Itoa(int(listen.Port()))},
			TranslatedAddress: backend.Addr().String(), TranslatedPort: strconv.Itoa(int(backend.Port()))}},
	}}}}}
	g := startGateway(t, gwOptions{policy: pol, cfg: cfg})
	ctx, cancel := context.WithCancel(context.Background())
	d := &udpDNATGateway{gw: g, listen: listen, cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- g.srv.ServeDNATUDP(ctx, pc) }()
	t.Cleanup(func() { cancel(); <-d.done })
	return d
}

// UDP DNAT from an allowed source carries data both ways, replies come
// from the listen address, the flow's record is written when it goes idle
// with its bytes; another source gets nothing and one deny record however
// often it retries.
func TestUDPDNAT(t *testing.T) {
	backend := udpEcho(t, "127.0.0.1:0")
	g := startUDPDNAT(t, Config{UDPIdleTimeout: time.Second}, backend, "127.0.0.1")

	c := udpFrom(t, "127.0.0.1")
	for i, msg := range []string{"one", "two"} {
		got, err := udpAsk(c, g.listen, msg, 2*time.Second)
		if want := "echo:" + msg; err != nil || got != want {
			t.Fatalf("datagram %d: udpAsk(%s, %q) = %q, %v; want %q", i, g.listen, msg, got, err, want)
		}
	}
	if got := testutil.ToFloat64(g.m.UDPFlows); got != 1 {
		t.Errorf("udp flows gauge = %v during the flow, want 1", got)
	}

	other := udpFrom(t, "127.0.0.2")
	for range 3 {
		if got, err := udpAsk(other, g.listen, "let me in", 200*time.Millisecond); err == nil {
			t.Errorf("udpAsk from 127.0.0.2 = %q, want no reply", got)
		}
	}

	recs := g.logs.Wait(t, 2)
	var allowed, denied int
	for _, r := range recs {
		switch {
		case r["verdict"] == "allow" && r["rule"] == "ntp" && r["listener"] == listenerDNATUDP && r["proto"] == "udp" &&
			r["upstream"] == backend.String() && r["dst"] == g.listen.String() && r["bytes_up"] == float64(6) && r["bytes_down"] == float64(16):
			allowed++
		case r["verdict"] == "deny" && r["reason"] == "no_match" && r["listener"] == listenerDNATUDP && r["src"] != nil:
			denied++
		default:
			t.Errorf("unexpected record %v", r)
		}
	}
	if allowed != 1 || denied != 1 {
		t.Errorf("records: %d allowed (bytes 6 up, 16 down), %d denied; want 1 and 1", allowed, denied)
	}
	if got := testutil.ToFloat64(g.m.UDPDropped.WithLabelValues("denied")); got != 2 {
		t.Errorf("dropped{denied} = %v, want 2 (the retries after the first datagram)", got)
	}
	if got := testutil.ToFloat64(g.m.Flows.WithLabelValues(listenerDNATUDP, "allow", "rule_allow", "g/inbound/ntp")); got != 1 {
		t.Errorf("flows{dnat_udp, allow} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(g.m.UDPFlows); got != 0 {
		t.Errorf("udp flows gauge = %v after idle, want 0", got)
	}

	// After the idle timeout the flow is new again: a new record.
	if got, err := udpAsk(c, g.listen, "three", 2*time.Second); err != nil || got != "echo:three" {
		t.Errorf("after idle: udpAsk = %q, %v; want echo:three", got, err)
	}
}

// The flow limit (here per source: udpMaxFlows 2 caps the source's share
// at 2) drops datagrams of new flows while the source's flows are busy,
// and frees up when flows end.
func TestUDPFlowLimit(t *testing.T) {
	backend := udpEcho(t, "127.0.0.1:0")
	g := startUDPDNAT(t, Config{UDPIdleTimeout: 400 * time.Millisecond, UDPMaxFlows: 2}, backend, "127.0.0.1")
	var clients []*net.UDPConn
	for i := range 3 {
		c := udpFrom(t, "127.0.0.1")
		clients = append(clients, c)
		got, err := udpAsk(c, g.listen, "x", 300*time.Millisecond)
		if i < 2 && (err != nil || got != "echo:x") {
			t.Errorf("client %d: %q, %v; want echo:x", i, got, err)
		}
		if i == 2 && err == nil {
			t.Errorf("client %d beyond the source's 2 flows: %q, want dropped", i, got)
		}
	}
	if got := testutil.ToFloat64(g.m.UDPDropped.WithLabelValues(udpDropSourceLimit)); got != 1 {
		t.Errorf("dropped{source_limit} = %v, want 1", got)
	}
	g.logs.Wait(t, 2) // both flows went idle
	if got, err := udpAsk(clients[2], g.listen, "y", 2*time.Second); err != nil || got != "echo:y" {
		t.Errorf("after the flows ended: %q, %v; want echo:y", got, err)
	}
}

// Shutdown ends live UDP flows at once and their records are written
// before it returns.
func TestUDPShutdown(t *testing.T) {
	backend := udpEcho(t, "127.0.0.1:0")
	g := startUDPDNAT(t, Config{UDPIdleTimeout: time.Hour}, backend, "127.0.0.1")
	for range 5 {
		c := udpFrom(t, "127.0.0.1")
		if got, err := udpAsk(c, g.listen, "hi", 2*time.Second); err != nil || got != "echo:hi" {
			t.Fatalf("udpAsk = %q, %v", got, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := g.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v, want nil", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %s with idle timeout 1h, want prompt", d)
	}
	if n := len(g.logs.Records(t)); n != 5 {
		t.Errorf("records after Shutdown = %d, want 5", n)
	}
	select {
	case err := <-g.done:
		g.done <- err
		if err != nil {
			t.Errorf("ServeDNATUDP = %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("ServeDNATUDP still running after Shutdown")
	}
}

// ListenTransparentUDP with a datagram sent straight to it (not
// intercepted): its original destination is the listener itself, so it
// is dropped as a loop and no flow is opened. Needs CAP_NET_ADMIN.
func TestL4UDPLoop(t *testing.T) {
	pc, err := ListenTransparentUDP(context.Background(), "127.0.0.1:0")
	if err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("needs CAP_NET_ADMIN: %v", err)
		}
		t.Fatal(err)
	}
	g := startGateway(t, gwOptions{policy: l4UDPTestPolicy()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.srv.ServeL4UDP(ctx, pc) }()
	t.Cleanup(func() { cancel(); <-done })
	c := udpFrom(t, "127.0.0.1")
	dst := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	if got, err := udpAsk(c, dst, "x", 300*time.Millisecond); err == nil {
		t.Errorf("datagram to the L4 listener itself = %q, want dropped", got)
	}
	if got := testutil.ToFloat64(g.m.UDPDropped.WithLabelValues("loop")); got != 1 {
		t.Errorf("dropped{loop} = %v, want 1", got)
	}
	if n := len(g.logs.Records(t)); n != 0 {
		t.Errorf("records = %d, want 0", n)
	}
}

func l4UDPTestPolicy() policy.Config {
	return policy.Config{RuleCollectionGroups: []policy.RuleCollectionGroup{{Name: "g", Priority: 100, RuleCollections: []policy.RuleCollection{{
		Name: "net", Type: policy.TypeNetwork, Priority: 100, Action: policy.ActionAllow,
		Rules: []policy.Rule{{Name: "ntp", Protocols: []string{"UDP"}, SourceAddresses: []string{"*"}, DestinationAddresses: []string{"127.0.0.0/8"}, DestinationPorts: []string{"123"}}},
	}}}}}
}
