//go:build e2e

package node

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/airlockdev/airlock/internal/testkit/dnstest"
	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// TestE2ENodeDNSReplicas: node.dns lists two replicas (198.18.61.1 and
// 198.18.61.5 in the gw namespace); apply under block writes both into
// resolv.conf with short timeouts and lets both through the firewall. The
// node's libc (getent, reading the applied resolv.conf through
// /etc/netns/NODE/resolv.conf) resolves through the first; when the first
// replica's process is gone (port unreachable) and when it is silent (its
// datagrams dropped), through the second.
func TestE2ENodeDNSReplicas(t *testing.T) {
	tp := newTopo(t)
	if _, err := exec.LookPath("getent"); err != nil {
		t.Skip("getent not installed (libc-bin)")
	}
	replicas := []string{"198.18.61.1", "198.18.61.5"}
	answers := []string{"198.18.62.10", "198.18.62.11"} // which replica answered
	stops := make([]func(), len(replicas))
	for i, ip := range replicas {
		var pc net.PacketConn
		var ln net.Listener
		var err error
		netnstest.Do(t, tp.gw, func() {
			if pc, err = net.ListenPacket("udp", ip+":53"); err == nil {
				ln, err = net.Listen("tcp", ip+":53")
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		ans := answers[i]
		stops[i] = dnstest.Serve(t, pc, ln, dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(q)
			if q.Question[0].Name == "replica.test." && q.Question[0].Qtype == dns.TypeA {
				rr, _ := dns.NewRR("replica.test. 60 IN A " + ans)
				m.Answer = append(m.Answer, rr)
			}
			w.WriteMsg(m)
		}))
	}

	root := t.TempDir()
	writeE2E(t, root, "etc/resolv.conf", "nameserver 192.0.2.53\noptions ndots:1\n")
	in := e2eInput(OutboundBlock)
	in.Config.DNS = Addresses{replicas[0] + ":53", replicas[1] + ":53"}
	in.Config.Resolver = ResolverResolvConf
	if _, err := New(root, nsRunner{tp.node}, nil).Apply(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(root, ResolvConf))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "nameserver 198.18.61.1\nnameserver 198.18.61.5\n") || !strings.Contains(string(conf), shortTimeouts) {
		t.Fatalf("applied resolv.conf =\n%s\nwant both replicas and %q", conf, shortTimeouts)
	}
	// ip netns exec bind-mounts /etc/netns/NAME/resolv.conf over
	// /etc/resolv.conf for the command it runs.
	etc := filepath.Join("/etc/netns", tp.node)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc); os.Remove("/etc/netns") }) // the parent only when empty
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}

	resolve := func(when, want string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", tp.node, "getent", "ahostsv4", "replica.test").CombinedOutput()
		t.Logf("%s: getent took %s", when, time.Since(start).Round(time.Millisecond))
		if err != nil || !strings.HasPrefix(string(out), want+" ") {
			t.Errorf("%s: getent ahostsv4 replica.test = %v %q, want %s", when, err, out, want)
		}
	}
	resolve("both replicas up", answers[0])

	stops[0]()
	resolve("first replica's process gone", answers[1])

	// A silent first replica: a socket that reads and never answers.
	var silent net.PacketConn
	netnstest.Do(t, tp.gw, func() { silent, err = net.ListenPacket("udp", replicas[0]+":53") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := silent.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	resolve("first replica silent", answers[1])
}
