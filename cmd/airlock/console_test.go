package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/admin"
	"github.com/airlockdev/airlock/internal/testkit/porttest"
	"github.com/airlockdev/airlock/internal/testkit/redistest"
)

// The tee puts decision records into the ring as JSON lines, with the
// logger's attributes, even when the log is text; other records and
// records below the level stay out; the log itself is unchanged.
func TestDecisionTee(t *testing.T) {
	var out bytes.Buffer
	log, level, err := newLogger(&out, "text", "info")
	if err != nil {
		t.Fatal(err)
	}
	d := admin.NewDecisions(admin.DecisionsOptions{})
	log = slog.New(newDecisionTee(log.Handler(), d))
	gw := log.With("replica", "gw1").With("component", "gateway")
	gw.Info("egress decision", "src", "10.0.0.1:5000", "name", "evil.example", "verdict", "deny", "reason", "no_match")
	gw.Info("admin listening", "addr", "127.0.0.1:1")
	log.WithGroup("g").Info("dns decision", "qname", "a.example.", "verdict", "allow")
	level.Set(slog.LevelWarn)
	gw.Info("egress decision", "verdict", "allow")
	got := d.Recent(admin.Filter{}, 0)
	if len(got) != 2 {
		t.Fatalf("ring = %q, want the two decision records logged at info", got)
	}
	if !strings.HasPrefix(string(got[0]), `{"time":`) || !strings.Contains(string(got[0]), `"msg":"egress decision","replica":"gw1","component":"gateway","src":"10.0.0.1:5000"`) {
		t.Errorf("ring line = %s, want the JSON record with replica and component first", got[0])
	}
	if !strings.Contains(string(got[1]), `"g":{"qname":"a.example."`) {
		t.Errorf("ring line = %s, want the group kept", got[1])
	}
	if strings.Count(out.String(), "\n") != 3 || !strings.Contains(out.String(), `msg="egress decision"`) {
		t.Errorf("log = %q, want the three info records as text", out.String())
	}
}

func TestConfigCheckWarnsOpenAdmin(t *testing.T) {
	path := t.TempDir() + "/airlock.yaml"
	writeFile(t, path, "version: 1\nadmin: {listen: \"0.0.0.0:9090\"}\n")
	var stdout, stderr bytes.Buffer
	if code := runConfigCheck([]string{path}, &stdout, &stderr); code != exitOK {
		t.Fatalf("config check = %d %q %q, want 0", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "warning: admin.listen 0.0.0.0:9090 is not loopback and admin.users is empty") {
		t.Errorf("config check = %q, want the admin warning", stdout.String())
	}
	writeFile(t, path, "version: 1\nadmin: {listen: \"127.0.0.1:9090\"}\n")
	stdout.Reset()
	runConfigCheck([]string{path}, &stdout, &stderr)
	if strings.Contains(stdout.String(), "warning") {
		t.Errorf("config check of a loopback admin = %q, want no warning", stdout.String())
	}
}

// airlock serve with the gateway, DNS and admin on loopback: a denied
// CONNECT is on /api/decisions and on the stream, and explain answers from
// the running policy.
func TestServeConsoleSeesDeniedConnect(t *testing.T) {
	adminAddr, proxy, dnsAddr := porttest.FreeAddr(t), porttest.FreeAddr(t), porttest.FreeAddr(t)
	cfg := parseConfig(t, fmt.Sprintf(`version: 1
admin: {listen: "%s"}
dns: {listen: "%s", forwarders: ["%s"]}
gateway: {proxyListen: "%s"}
policy:
  ruleCollectionGroups:
    - name: g
      priority: 100
      ruleCollections:
        - {name: c, type: application, priority: 100, action: allow, rules: [{name: allowed, sourceAddresses: ["*"], protocols: ["https:443"], targetFqdns: ["allowed.example"]}]}
`, adminAddr, dnsAddr, porttest.FreeAddr(t), proxy))
	// A real handler: the tee keeps its level (slog.DiscardHandler would
	// disable every record).
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	defer startServe(t, cfg, log)()
	base := "http://" + adminAddr
	waitHTTP(t, base+"/readyz", func(code int, _ string) bool { return code == 200 })

	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	req, _ := http.NewRequestWithContext(sctx, "GET", base+"/api/decisions/stream?verdict=deny", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "data: ") {
				events <- strings.TrimPrefix(l, "data: ")
			}
		}
		close(events)
	}()

	// A CONNECT to a name the policy does not allow.
	c, err := net.DialTimeout("tcp", proxy, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT denied.example:443 HTTP/1.1\r\nHost: denied.example:443\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	status, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if !strings.Contains(status, "403") {
		t.Errorf("CONNECT denied.example = %q, want 403", status)
	}

	select {
	case ev := <-events:
		if !strings.Contains(ev, `"msg":"egress decision"`) || !strings.Contains(ev, `"name":"denied.example"`) || !strings.Contains(ev, `"component":"gateway"`) {
			t.Errorf("stream event = %s, want the gateway's deny of denied.example", ev)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no stream event within 30s of the denied CONNECT")
	}

	_, body := httpGet(t, base+"/api/decisions?verdict=deny&name=denied")
	if lines := strings.Split(strings.TrimSpace(body), "\n"); len(lines) != 1 || !strings.Contains(lines[0], `"verdict":"deny"`) {
		t.Errorf("GET /api/decisions?verdict=deny = %q, want the one deny", body)
	}
	if code, body := httpGet(t, base+"/api/explain?src=127.0.0.1&dst=allowed.example:443&sni=allowed.example"); code != 200 || !strings.Contains(body, `"rule":"allowed"`) {
		t.Errorf("GET /api/explain = %d %s, want allow by rule allowed", code, body)
	}
	if code, body := httpGet(t, base+"/api/overview"); code != 200 || !strings.Contains(body, `"name":"gateway","state":"ready"`) || !strings.Contains(body, `"deny":1`) {
		t.Errorf("GET /api/overview = %d %s, want the gateway ready and one deny counted", code, body)
	}
	if code, body := httpGet(t, base+"/api/policy/hits"); code != 200 || !strings.Contains(body, `"rule":"allowed"`) {
		t.Errorf("GET /api/policy/hits = %d %s", code, body)
	}
	// learn proposes allowing what was denied, from the ring.
	if code, body := httpGet(t, base+"/api/learn?format=json"); code != 200 || !strings.Contains(body, `"records":1`) || !strings.Contains(body, "denied.example") || !strings.Contains(body, "policy:") {
		t.Errorf("GET /api/learn?format=json = %d %s, want a proposal from the one record allowing denied.example", code, body)
	}
	if code, body := httpGet(t, base+"/"); code != 200 || !strings.Contains(body, "<html") {
		t.Errorf("GET / = %d %.200s, want the console page", code, body)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitHTTP(t *testing.T, url string, ok func(int, string) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if ok(resp.StatusCode, string(b)) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: not as wanted within 30s", url)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With replicas the ring's lines name the replica, as the log's do.
func TestServeConsoleRecordsNameReplica(t *testing.T) {
	r := redistest.Start(t)
	adminAddr, proxy := porttest.FreeAddr(t), porttest.FreeAddr(t)
	cfg := parseConfig(t, fmt.Sprintf(`version: 1
cluster: {name: gw7, redis: {address: "%s"}}
admin: {listen: "%s"}
gateway: {proxyListen: "%s"}
`, r.Addr, adminAddr, proxy))
	defer startServe(t, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))()
	base := "http://" + adminAddr
	waitHTTP(t, base+"/readyz", func(code int, _ string) bool { return code == 200 })
	c, err := net.DialTimeout("tcp", proxy, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT denied.example:443 HTTP/1.1\r\nHost: denied.example:443\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	bufio.NewReader(c).ReadString('\n')
	c.Close()
	var body string
	waitHTTP(t, base+"/api/decisions", func(code int, b string) bool { body = b; return code == 200 && strings.Contains(b, "denied.example") })
	if !strings.Contains(body, `"replica":"gw7"`) || !strings.Contains(body, `"component":"gateway"`) {
		t.Errorf("GET /api/decisions = %s, want the record with replica gw7 and component gateway", body)
	}
}
