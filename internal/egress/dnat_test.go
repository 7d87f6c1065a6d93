package egress

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/policy"
)

// DNAT from an allowed source carries data both ways; from another source
// the connection is closed and the record says deny.
func TestDNAT(t *testing.T) {
	backend := echoServer(t, "127.0.0.1:0", "backend")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().(*net.TCPAddr).AddrPort()
	pol := policy.Config{RuleCollectionGroups: []policy.RuleCollectionGroup{{Name: "g", Priority: 100, RuleCollections: []policy.RuleCollection{{
		Name: "inbound", Type: policy.TypeDNAT, Priority: 100, Action: policy.ActionAllow,
		Rules: []policy.Rule{{Name: "api", Protocols: []string{"TCP"}, SourceAddresses: []string{"127.0.0.1"},
			DestinationAddresses: []string{listen.Addr().String()}, DestinationPorts: []string{strconv.Itoa(int(listen.Port()))},
			TranslatedAddress: backend.Addr().String(), TranslatedPort: strconv.Itoa(int(backend.Port()))}},
	}}}}}
	g := startGateway(t, gwOptions{policy: pol})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); g.srv.ServeDNAT(ctx, ln) }()
	t.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })

	dialFrom := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", listen.String())
		if err != nil {
			t.Fatalf("dial %s from %s: %v", listen, src, err)
		}
		return c
	}
	c := dialFrom("127.0.0.1")
	expectEcho(t, c, bufio.NewReader(c), "backend", "hello")
	c.Close()

	c = dialFrom("127.0.0.2")
	expectClosed(t, c)
	c.Close()

	var allowed, denied int
	for _, r := range g.logs.Wait(t, 2) {
		switch {
		case r["verdict"] == "allow" && r["rule"] == "api" && r["listener"] == "dnat" && r["upstream"] == backend.String():
			allowed++
		case r["verdict"] == "deny" && r["listener"] == "dnat":
			denied++
		}
	}
	if allowed != 1 || denied != 1 {
		t.Errorf("DNAT records: %d allowed by rule api, %d denied; want 1 and 1", allowed, denied)
	}
}
