//go:build e2e

package egress

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/policy"
)

const e2eL4HelperEnv = "AIRLOCK_EGRESS_E2E_L4"

// l4Policy allows TCP 2222 to 198.19.0.10 only.
func l4Policy() policy.Config {
	return policy.Config{RuleCollectionGroups: []policy.RuleCollectionGroup{{Name: "g", Priority: 100, RuleCollections: []policy.RuleCollection{{
		Name: "net", Type: policy.TypeNetwork, Priority: 100, Action: policy.ActionAllow,
		Rules: []policy.Rule{{Name: "ssh-like", Protocols: []string{"TCP"}, SourceAddresses: []string{"*"}, DestinationAddresses: []string{"198.19.0.10/32"}, DestinationPorts: []string{"2222"}}},
	}}}}}
}

// TestE2EL4Helper is the gateway process of TestE2EL4.
func TestE2EL4Helper(t *testing.T) {
	if os.Getenv(e2eL4HelperEnv) == "" {
		t.Skip("helper process of TestE2EL4")
	}
	p, err := policy.Compile(l4Policy())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{}
	cfg.SetDefaults()
	srv, err := New(&cfg, Deps{Policy: p, Logger: slog.New(slog.NewJSONHandler(os.Stdout, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ListenTransparent(context.Background(), "0.0.0.0:15002")
	if err != nil {
		t.Fatal(err)
	}
	os.Stderr.WriteString("READY\n")
	srv.ServeL4(context.Background(), ln) // until killed
}

// TestE2EL4 routes a node through the gateway host, whose TPROXY rule
// (airlock's ruleset) hands network-rule ports to the L4 listener: the
// allowed destination and port carries data both ways, the same port to
// another address is refused by the gateway, and a port no rule names is
// dropped by the forward policy.
func TestE2EL4(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("e2e: needs root for network namespaces, nftables and TPROXY")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("e2e: %s not installed", tool)
		}
	}
	tp := e2eTopology(t)
	p, err := policy.Compile(l4Policy())
	if err != nil {
		t.Fatal(err)
	}
	rules := Ruleset(RulesInput{TransparentPort: 15001, L4Port: 15002, L4Ports: p.NetworkPorts()})
	inNetns(t, tp.gw, func() {
		if err := ApplyRuleset(context.Background(), rules); err != nil {
			t.Errorf("apply ruleset in gw: %v", err)
		}
		if err := ApplyRouting(context.Background()); err != nil {
			t.Errorf("apply routing in gw: %v", err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// The "internet": echo servers on the allowed and on another port.
	for _, addr := range []string{"198.19.0.10:2222", "198.19.0.11:2222", "198.19.0.10:2223"} {
		inNetns(t, tp.inet, func() {
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

	logs := startGatewayHelper(t, tp.gw, "TestE2EL4Helper", e2eL4HelperEnv)

	echo := func(dst string) (string, error) {
		var reply string
		var err error
		inNetns(t, tp.node, func() {
			var c net.Conn
			c, err = net.DialTimeout("tcp", dst, 2*time.Second)
			if err != nil {
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
	if got, err := echo("198.19.0.10:2222"); err != nil || got != "ping" {
		t.Errorf("allowed 198.19.0.10:2222 = %q, %v; want the echo", got, err)
	}
	if got, err := echo("198.19.0.11:2222"); err == nil {
		t.Errorf("198.19.0.11:2222 (port intercepted, address not allowed) = %q; want refused", got)
	}
	if got, err := echo("198.19.0.10:2223"); err == nil {
		t.Errorf("198.19.0.10:2223 (no rule names the port) = %q; want dropped", got)
	}

	var allow, deny bool
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !(allow && deny) {
		data, _ := os.ReadFile(logs.Name())
		s := string(data)
		allow = strings.Contains(s, `"listener":"l4"`) && strings.Contains(s, `"rule":"ssh-like"`) && strings.Contains(s, `"verdict":"allow"`)
		deny = strings.Contains(s, `"dst":"198.19.0.11:2222"`) && strings.Contains(s, `"verdict":"deny"`)
		time.Sleep(50 * time.Millisecond)
	}
	if !allow || !deny {
		data, _ := os.ReadFile(logs.Name())
		t.Errorf("gateway records: allow by ssh-like %v, deny of 198.19.0.11:2222 %v; log:\n%s", allow, deny, data)
	}
}
