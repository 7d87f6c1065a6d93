//go:build e2e

package egress

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/hostfw"
	"github.com/airlockdev/airlock/internal/netclass"
	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

const e2eL4HelperEnv = "AIRLOCK_EGRESS_E2E_L4"

// l4Policy allows TCP 2222 and UDP 123 (an NTP-like echo) to 198.19.0.10
// and fdaa:99::10 only, and DNATs the gateway's 198.18.1.1:8022 (TCP) and
// :8123 (UDP) to them for the node's first address 198.18.1.2 only.
func l4Policy() policy.Config {
	dnat := func(name, proto, port, to string) policy.Rule {
		return policy.Rule{Name: name, Protocols: []string{proto}, SourceAddresses: []string{"198.18.1.2"},
			DestinationAddresses: []string{"198.18.1.1"}, DestinationPorts: []string{port}, TranslatedAddress: "198.19.0.10", TranslatedPort: to}
	}
	return policy.Config{RuleCollectionGroups: []policy.RuleCollectionGroup{{Name: "g", Priority: 100, RuleCollections: []policy.RuleCollection{
		{
			Name: "inbound", Type: policy.TypeDNAT, Priority: 100, Action: policy.ActionAllow,
			Rules: []policy.Rule{dnat("api", "TCP", "8022", "2222"), dnat("ntp-in", "UDP", "8123", "123")},
		},
		{
			Name: "net", Type: policy.TypeNetwork, Priority: 200, Action: policy.ActionAllow,
			Rules: []policy.Rule{
				{Name: "ssh-like", Protocols: []string{"TCP"}, SourceAddresses: []string{"*"}, DestinationAddresses: []string{"198.19.0.10/32", "fdaa:99::10/128"}, DestinationPorts: []string{"2222"}},
				{Name: "ntp", Protocols: []string{"UDP"}, SourceAddresses: []string{"*"}, DestinationAddresses: []string{"198.19.0.10/32", "fdaa:99::10/128"}, DestinationPorts: []string{"123"}},
			},
		},
	}}}}
}

// TestE2EL4Helper is the gateway process of TestE2EL4: the L4 listener
// (TCP and UDP, dual-stack) and the DNAT listeners, in the mode the env
// variable names.
func TestE2EL4Helper(t *testing.T) {
	mode := os.Getenv(e2eL4HelperEnv)
	if mode == "" {
		t.Skip("helper process of TestE2EL4")
	}
	p, err := policy.Compile(l4Policy())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Mode: Mode(mode), AllowIPv6: true, UDPIdleTimeout: time.Second,
		AllowedInternalRanges: netclass.MustParseRanges("198.18.0.0/15", "fdaa::/16")}
	cfg.SetDefaults()
	srv, err := New(&cfg, Deps{Policy: p, Logger: slog.New(slog.NewJSONHandler(os.Stdout, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ln, err := ListenTransparent(ctx, "[::]:15002")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := ListenTransparentUDP(ctx, "[::]:15002")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeL4(ctx, ln)
	go srv.ServeL4UDP(ctx, pc)
	for _, d := range p.DNATListeners() {
		if d.Proto == policy.ProtoUDP {
			pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(d.Addr))
			if err != nil {
				t.Fatal(err)
			}
			go srv.ServeDNATUDP(ctx, pc)
			continue
		}
		ln, err := net.Listen("tcp", d.Addr.String())
		if err != nil {
			t.Fatal(err)
		}
		go srv.ServeDNAT(ctx, ln)
	}
	os.Stderr.WriteString("READY\n")
	select {} // until killed
}

// l4Peers starts the "internet" side: TCP and UDP echo servers.
func l4Peers(t *testing.T, inet string) {
	for _, addr := range []string{"198.19.0.10:2222", "198.19.0.11:2222", "198.19.0.10:2223", "[fdaa:99::10]:2222"} {
		netnstest.Do(t, inet, func() {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("listen %s: %v", addr, err)
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() { io.Copy(c, c); c.Close() }()
				}
			}()
		})
	}
	for _, addr := range []string{"198.19.0.10:123", "198.19.0.11:123", "198.19.0.10:124", "198.19.0.10:443", "169.254.169.254:123", "[fdaa:99::10]:123", "[fdaa:99::11]:123"} {
		netnstest.Do(t, inet, func() { udpEcho(t, addr) })
	}
}

// TestE2EL4 routes a node through the gateway host, whose ruleset
// (airlock's, TPROXY included) hands network-rule ports, TCP and UDP, to
// the L4 listener, and whose DNAT listeners forward for an allowlisted
// source. It runs once in enforce mode and once in report mode.
func TestE2EL4(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("e2e: needs root for network namespaces, nftables and TPROXY")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("e2e: %s not installed", tool)
		}
	}
	p, err := policy.Compile(l4Policy())
	if err != nil {
		t.Fatal(err)
	}
	rules := RulesInput{TransparentPort: 15001, L4Port: 15002, L4Ports: p.NetworkPorts()}
	for _, mode := range []Mode{ModeEnforce, ModeReport} {
		t.Run(string(mode), func(t *testing.T) {
			tp := e2eTopology(t)
			netnstest.Do(t, tp.gw, func() {
				if err := InstallRules(context.Background(), hostfw.Exec{}, rules); err != nil {
					t.Errorf("install rules in gw: %v", err)
				}
			})
			if t.Failed() {
				t.FailNow()
			}
			l4Peers(t, tp.inet)
			logs := startGatewayHelperEnv(t, tp.gw, "TestE2EL4Helper", e2eL4HelperEnv+"="+string(mode))
			testL4(t, tp, mode, logs)
		})
	}
}

func testL4(t *testing.T, tp topology, mode Mode, logs *os.File) {
	report := mode == ModeReport
	tcpEcho := func(src, dst string) (string, error) {
		var reply string
		var err error
		netnstest.Do(t, tp.node, func() {
			d := net.Dialer{Timeout: 2 * time.Second}
			if src != "" {
				d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
			}
			var c net.Conn
			if c, err = d.Dial("tcp", dst); err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err = c.Write([]byte("ping\n")); err != nil {
				return
			}
			reply, err = bufio.NewReader(c).ReadString('\n')
		})
		return strings.TrimSpace(reply), err
	}
	udpEchoFrom := func(src, dst string) (string, error) {
		var reply string
		var err error
		netnstest.Do(t, tp.node, func() {
			d := netip.MustParseAddrPort(dst)
			network := "udp4"
			if d.Addr().Is6() {
				network = "udp6"
			}
			var laddr *net.UDPAddr
			if src != "" {
				laddr = &net.UDPAddr{IP: net.ParseIP(src)}
			}
			c, e := net.ListenUDP(network, laddr)
			if e != nil {
				err = e
				return
			}
			defer c.Close()
			// A lost first datagram (neighbour discovery) is retried,
			// as an NTP client would.
			for range 3 {
				if reply, err = udpAsk(c, d, "ntp?", time.Second); err == nil {
					return
				}
			}
		})
		return reply, err
	}

	type check struct {
		name, proto, src, dst string
		pass                  bool
	}
	checks := []check{
		{"allowed tcp", "tcp", "", "198.19.0.10:2222", true},
		{"tcp: port intercepted, address not allowed", "tcp", "", "198.19.0.11:2222", report},
		{"tcp: port no rule names (forward drop)", "tcp", "", "198.19.0.10:2223", false},
		{"allowed tcp over IPv6", "tcp", "", "[fdaa:99::10]:2222", true},
		{"allowed udp (ntp-like echo on 123)", "udp", "", "198.19.0.10:123", true},
		{"udp: port intercepted, address not allowed", "udp", "", "198.19.0.11:123", report},
		{"udp: port no rule names (forward drop)", "udp", "", "198.19.0.10:124", false},
		{"udp/443 (QUIC)", "udp", "", "198.19.0.10:443", report},
		{"udp to the metadata address", "udp", "", "169.254.169.254:123", false},
		{"allowed udp over IPv6", "udp", "", "[fdaa:99::10]:123", true},
		{"udp over IPv6: address not allowed", "udp", "", "[fdaa:99::11]:123", report},
		{"dnat tcp from the allowed source", "tcp", "198.18.1.2", "198.18.1.1:8022", true},
		{"dnat tcp from another source", "tcp", "198.18.1.3", "198.18.1.1:8022", false},
		{"dnat udp from the allowed source", "udp", "198.18.1.2", "198.18.1.1:8123", true},
		{"dnat udp from another source", "udp", "198.18.1.3", "198.18.1.1:8123", false},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			var got string
			var err error
			if c.proto == "tcp" {
				got, err = tcpEcho(c.src, c.dst)
				if c.pass && (err != nil || got != "ping") {
					t.Errorf("tcp %s -> %s = %q, %v; want the echo", c.src, c.dst, got, err)
				}
			} else {
				got, err = udpEchoFrom(c.src, c.dst)
				if c.pass && (err != nil || got != "echo:ntp?") {
					t.Errorf("udp %s -> %s = %q, %v; want the echo from %s", c.src, c.dst, got, err, c.dst)
				}
			}
			if !c.pass && err == nil {
				t.Errorf("%s %s -> %s = %q; want no answer", c.proto, c.src, c.dst, got)
			}
		})
	}

	// The records, as "listener proto verdict reason rule dst would_deny":
	// UDP flows are written when idle (1s here).
	// Report mode logs would-deny flows with the policy's deny and
	// would_deny true; the address checks still deny (metadata).
	want := map[string]bool{
		"l4 tcp allow rule_allow ssh-like 198.19.0.10:2222 false":           true,
		"l4 tcp allow rule_allow ssh-like [fdaa:99::10]:2222 false":         true,
		"l4_udp udp allow rule_allow ntp 198.19.0.10:123 false":             true,
		"l4_udp udp allow rule_allow ntp [fdaa:99::10]:123 false":           true,
		"l4_udp udp deny internal_address  169.254.169.254:123 false":       report,
		"l4_udp udp deny no_match  169.254.169.254:123 false":               !report,
		"l4 tcp deny no_match  198.19.0.11:2222 " + fmt.Sprint(report):      true,
		"l4_udp udp deny no_match  198.19.0.11:123 " + fmt.Sprint(report):   true,
		"l4_udp udp deny no_match  198.19.0.10:443 " + fmt.Sprint(report):   true,
		"l4_udp udp deny no_match  [fdaa:99::11]:123 " + fmt.Sprint(report): true,
		"dnat tcp allow rule_allow api 198.18.1.1:8022 false":               true,
		"dnat tcp deny no_match  198.18.1.1:8022 false":                     true,
		"dnat_udp udp allow rule_allow ntp-in 198.18.1.1:8123 false":        true,
		"dnat_udp udp deny no_match  198.18.1.1:8123 false":                 true,
	}
	for k, v := range want {
		if !v {
			delete(want, k)
		}
	}
	var got []string
	deadline := time.Now().Add(8 * time.Second)
	for {
		got = got[:0]
		data, _ := os.ReadFile(logs.Name())
		for _, line := range strings.Split(string(data), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != recordMsg {
				continue
			}
			wd, _ := m["would_deny"].(bool)
			got = append(got, fmt.Sprint(m["listener"], " ", m["proto"], " ", m["verdict"], " ", m["reason"], " ", str(m["rule"]), " ", m["dst"], " ", wd))
			if m["proto"] == "udp" && m["verdict"] == "allow" && (m["bytes_up"] == float64(0) || m["bytes_down"] == float64(0)) {
				t.Errorf("udp allow record without bytes both ways: %v", m)
			}
		}
		missing := 0
		for k := range want {
			if !contains(got, k) {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for k := range want {
		if !contains(got, k) {
			t.Errorf("no record %q", k)
		}
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("unexpected record %q", g)
		}
	}
	if t.Failed() {
		data, _ := os.ReadFile(logs.Name())
		t.Logf("gateway log:\n%s", data)
	}
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
