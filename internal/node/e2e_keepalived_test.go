//go:build e2e

package node

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/netnstest"
	"github.com/airlockdev/airlock/internal/testkit/proctest"
)

// TestE2EKeepalivedFailover runs the example keepalived config on two
// "gateway replicas", each a network namespace with a /readyz stand-in on
// its own loopback 127.0.0.1:9090, joined by a veth pair (unicast VRRP):
//
//	gw1 k0 198.18.70.1/24  <->  gw2 k0 198.18.70.2/24     virtual 198.18.70.100
//
// gw1 (priority 150) takes the virtual address; when its /readyz turns
// 503 the check fails and gw2 takes it; a degraded replica (200) keeps it.
func TestE2EKeepalivedFailover(t *testing.T) {
	bin := needKeepalived(t)
	raw, err := os.ReadFile(keepalivedExample)
	if err != nil {
		t.Fatal(err)
	}
	script := installCheckScript(t)
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	gws := []string{"alxk-1-" + id, "alxk-2-" + id}
	for _, ns := range gws {
		netnstest.Add(t, ns)
	}
	netnstest.Exec(t, "ip", "link", "add", "k0", "netns", gws[0], "type", "veth", "peer", "name", "k0", "netns", gws[1])
	addrs := []string{"198.18.70.1", "198.18.70.2"}
	const vip = "198.18.70.100"
	var ready [2]atomic.Int32 // HTTP status /readyz answers
	for i, ns := range gws {
		netnstest.Exec(t, "ip", "-n", ns, "addr", "add", addrs[i]+"/24", "dev", "k0")
		netnstest.Exec(t, "ip", "-n", ns, "link", "set", "k0", "up")
		ready[i].Store(http.StatusOK)
		var ln net.Listener
		netnstest.Do(t, ns, func() { ln, err = net.Listen("tcp", "127.0.0.1:9090") })
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			code := int(ready[i].Load())
			w.WriteHeader(code)
			if code == http.StatusOK {
				w.Write([]byte("degraded\nredis unreachable\n"))
			}
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}

	// gw1 as shipped, gw2 as the comments say; interface and addresses of
	// this rig.
	for i, ns := range gws {
		peer := addrs[1-i]
		r := []string{
			keepalivedCheckPath, script,
			"interface eth0", "interface k0",
			"10.42.2.100/24 dev eth0", vip + "/24 dev k0",
			"unicast_src_ip 10.42.2.4", "unicast_src_ip " + addrs[i],
			"\t\t10.42.2.5 ", "\t\t" + peer + " ",
		}
		if i == 1 {
			r = append(r, "priority 150", "priority 100", "router_id airlock_gw1", "router_id airlock_gw2")
		}
		conf := strings.NewReplacer(r...).Replace(string(raw))
		dir := t.TempDir()
		p := filepath.Join(dir, "keepalived.conf")
		if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		cmd := exec.Command("ip", "netns", "exec", ns, bin, "--dont-fork", "--log-console", "--log-detail", "--vrrp",
			"-f", p, "-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"))
		cmd.Stdout, cmd.Stderr = &log, &log
		t.Cleanup(func() { // after the stop below: the log is complete
			if t.Failed() {
				t.Logf("keepalived %s log:\n%s", ns, log.String())
			}
		})
		proctest.Start(t, cmd) // stops the PID started: ip netns exec execs keepalived
	}

	holds := func(i int) bool {
		out, _ := exec.Command("ip", "-n", gws[i], "-4", "addr", "show", "dev", "k0").CombinedOutput()
		return strings.Contains(string(out), " "+vip+"/24 ")
	}
	waitFor := func(what string, holder int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if holds(holder) && !holds(1-holder) {
				// Still so a few adverts later: not a moment of a flap.
				time.Sleep(3 * time.Second)
				if holds(holder) && !holds(1-holder) {
					return
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("%s: %s holds %v, %s holds %v; want only gw%d", what, gws[0], holds(0), gws[1], holds(1), holder+1)
	}
	waitFor("start, both ready (degraded counts as ready)", 0)
	ready[0].Store(http.StatusServiceUnavailable)
	waitFor("gw1 /readyz 503", 1)
	ready[0].Store(http.StatusOK)
	// nopreempt: gw1 ready again does not take the address back.
	time.Sleep(5 * time.Second)
	waitFor("gw1 ready again (nopreempt)", 1)
}
