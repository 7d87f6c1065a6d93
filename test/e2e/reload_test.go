//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/porttest"
)

// TestServeReloadOnFileChange: `airlock serve` picks up a changed config
// file without a signal. A tunnel opened under an allow rule keeps working
// after the file turns the rule into a deny; a new tunnel is refused.
func TestServeReloadOnFileChange(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	proxy, admin := porttest.FreeAddr(t), porttest.FreeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "airlock.yaml")
	write := func(action string) {
		writeFile(t, cfg, fmt.Sprintf(`version: 1
log: { format: json }
admin: { listen: %q }
gateway: { proxyListen: %q, allowedInternalRanges: ["127.0.0.0/8"] }
policy:
  ruleCollectionGroups:
    - name: g
      priority: 100
      ruleCollections:
        - { name: n, type: network, priority: 100, action: %s, rules: [ { name: echo, protocols: [TCP], sourceAddresses: ["*"], destinationAddresses: ["127.0.0.1/32"], destinationPorts: ["%d"] } ] }
`, admin, proxy, action, echo.Addr().(*net.TCPAddr).Port))
	}
	write("allow")
	p := startProcess(t, "airlock", filepath.Join(dir, "airlock.log"), needAirlock(t), "serve", "--config", cfg, "--watch", "200ms")
	t.Cleanup(func() {
		if killed, err := p.stop(15 * time.Second); killed || err != nil {
			t.Errorf("airlock stop: killed=%v err=%v", killed, err)
		}
	})
	if err := waitFor(p, 20*time.Second, func() bool {
		c, err := net.Dial("tcp", proxy)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		t.Fatal(err)
	}
	connect := func() (net.Conn, *bufio.Reader, string) {
		c, err := net.Dial("tcp", proxy)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: x\r\n\r\n", echo.Addr())
		br := bufio.NewReader(c)
		status, _ := br.ReadString('\n')
		for {
			l, err := br.ReadString('\n')
			if err != nil || l == "\r\n" {
				break
			}
		}
		return c, br, strings.TrimSpace(status)
	}
	roundTrip := func(c net.Conn, br *bufio.Reader, msg string) string {
		io.WriteString(c, msg+"\n")
		got, _ := br.ReadString('\n')
		return strings.TrimSpace(got)
	}
	old, oldBR, status := connect()
	defer old.Close()
	if !strings.Contains(status, "200") || roundTrip(old, oldBR, "one") != "one" {
		t.Fatalf("CONNECT under the allow rule: %q, want 200 and an echo", status)
	}
	write("deny")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(p.logPath)
		if strings.Contains(string(b), "config file changed; reloading") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged 10 s after the file changed:\n%s", p.logTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	c, _, status := connect()
	c.Close()
	if !strings.Contains(status, "403") {
		t.Errorf("new CONNECT after the file switched to deny: %q, want 403", status)
	}
	if got := roundTrip(old, oldBR, "two"); got != "two" {
		t.Errorf("tunnel opened before the reload echoed %q, want it to stay open", got)
	}
}
