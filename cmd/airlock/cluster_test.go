package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/config"
	"github.com/airlockdev/airlock/internal/testkit/porttest"
	"github.com/airlockdev/airlock/internal/testkit/redistest"
)

func parseConfig(t *testing.T, yaml string) *config.File {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// Replicas of one cluster differ in their name and listen addresses; that
// is no mismatch. A different cache rule or policy is.
func TestConfigHashes(t *testing.T) {
	const base = `version: 1
cluster: {name: %s, redis: {address: "127.0.0.1:6379"}}
admin: {listen: "%s"}
dns: {listen: "%s", forwarders: ["%s"]}
policy:
  ruleCollectionGroups:
    - name: g
      priority: 100
      ruleCollections:
        - {name: c, type: application, priority: 100, action: allow, rules: [{name: r, sourceAddresses: ["*"], protocols: ["https:443"], targetFqdns: ["%s"]}]}
`
	a := parseConfig(t, fmt.Sprintf(base, "gw1", "127.0.0.1:9090", "127.0.0.1:53", "198.18.0.53:53", "example.com"))
	b := parseConfig(t, fmt.Sprintf(base, "gw2", "127.0.0.2:9091", "127.0.0.2:53", "198.18.0.53:53", "example.com"))
	c := parseConfig(t, fmt.Sprintf(base, "gw1", "127.0.0.1:9090", "127.0.0.1:53", "198.18.0.54:53", "example.com"))
	d := parseConfig(t, fmt.Sprintf(base, "gw1", "127.0.0.1:9090", "127.0.0.1:53", "198.18.0.53:53", "example.org"))
	ac, ap := configHashes(a)
	bc, bp := configHashes(b)
	cc, cp := configHashes(c)
	dc, dp := configHashes(d)
	if strings.HasPrefix(ac, "unhashable") {
		t.Fatalf("config hash: %s", ac)
	}
	if ac != bc || ap != bp {
		t.Errorf("replicas differing only in name and listen addresses: hashes %s/%s and %s/%s, want equal", ac, ap, bc, bp)
	}
	e := parseConfig(t, fmt.Sprintf(base, "gw1", "127.0.0.1:9090", "127.0.0.1:53", "198.18.0.53:53", "example.com"))
	e.Registry.Storage.Scratch, e.Registry.Storage.LocalCache.Path = "/var/tmp/gw1", "/var/cache/gw1"
	if ec, _ := configHashes(e); ec != ac {
		t.Errorf("replicas differing only in local scratch and cache directories: config hash %s vs %s, want equal", ec, ac)
	}
	if ac == cc || ap != cp {
		t.Errorf("different DNS forwarders: config hash %s vs %s (want different), policy %s vs %s (want equal)", ac, cc, ap, cp)
	}
	if ap == dp || ac != dc {
		t.Errorf("different policy: policy hash %s vs %s (want different), config %s vs %s (want equal)", ap, dp, ac, dc)
	}
}

// serve with a cluster section against a real redis-server: /readyz is
// ready, says degraded (still 200) while Redis is down, recovers by itself
// when Redis is back, and names a live replica whose policy differs.
func TestServeClusterReadyz(t *testing.T) {
	r := redistest.Start(t)
	const conf = `version: 1
cluster: {name: %s, redis: {address: "%s"}}
admin: {listen: "%s"}
policy:
  ruleCollectionGroups:
    - name: g
      priority: 100
      ruleCollections:
        - {name: c, type: application, priority: 100, action: allow, rules: [{name: r, sourceAddresses: ["*"], protocols: ["https:443"], targetFqdns: ["%s"]}]}
`
	log := slog.New(slog.DiscardHandler)
	run := func(name, fqdn string) (admin string, stop func()) {
		admin = porttest.FreeAddr(t)
		cfg := parseConfig(t, fmt.Sprintf(conf, name, r.Addr, admin, fqdn))
		return admin, startServe(t, cfg, log)
	}
	readyz := func(admin string) (int, string) {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor := func(admin, what string, ok func(int, string) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body := readyz(admin)
			if ok(code, body) {
				t.Logf("%s: /readyz %d %q", what, code, body)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /readyz still %d %q", what, code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	a1, stop1 := run("gw1", "example.com")
	defer stop1()
	waitFor(a1, "redis up", func(c int, b string) bool { return c == 200 && b == "ready\n" })

	resp, err := http.Get("http://" + a1 + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `airlock_cluster_redis_up{replica="gw1"} 1`; !strings.Contains(string(b), want) {
		t.Errorf("/metrics lacks %s", want)
	}

	r.Stop()
	waitFor(a1, "redis down", func(c int, b string) bool {
		return c == 200 && strings.HasPrefix(b, "degraded\ncluster: ")
	})
	r.Restart()
	waitFor(a1, "redis back", func(c int, b string) bool { return c == 200 && b == "ready\n" })

	a2, stop2 := run("gw2", "example.org")
	defer stop2()
	for _, a := range []string{a1, a2} {
		waitFor(a, "policy differs", func(c int, b string) bool {
			return c == 200 && strings.Contains(b, "cluster versions: ") && strings.Contains(b, "gw")
		})
	}
}

// `registry gc --delete` holds the cluster lease job:gc: a second one (or a
// replica's job) finds it held and is told so; without Redis there is no
// lease to take.
func TestJobLeaseGC(t *testing.T) {
	r := redistest.Start(t)
	cfg := parseConfig(t, fmt.Sprintf("version: 1\ncluster: {name: gc1, redis: {address: %q}}\n", r.Addr))
	var stderr strings.Builder
	release, err := jobLease(cfg, "gc", &stderr)
	if err != nil {
		t.Fatalf("first gc: %v", err)
	}
	if _, err := jobLease(cfg, "gc", &stderr); err == nil || !strings.Contains(err.Error(), "job:gc") {
		t.Errorf("second gc while the first holds the lease: err = %v, want one naming job:gc", err)
	} else {
		t.Logf("second gc: %v", err)
	}
	release()
	release2, err := jobLease(cfg, "gc", &stderr)
	if err != nil {
		t.Errorf("gc after the first released: %v", err)
	} else {
		release2()
	}
	none := parseConfig(t, "version: 1\n")
	if rel, err := jobLease(none, "gc", &stderr); err != nil {
		t.Errorf("without Redis: %v", err)
	} else {
		rel()
	}
}
