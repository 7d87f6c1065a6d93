package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/config"
	"github.com/airlockdev/airlock/internal/hostfw/hostfwtest"
	"github.com/airlockdev/airlock/internal/testkit/logcap"
	"github.com/airlockdev/airlock/internal/testkit/porttest"
)

func TestNodeAgentFlags(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "airlock.yaml")
	writeFile(t, cfg, nodeTestConfig)
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, nodeTestConfig+"  agent: { interval: 100ms }\n")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"help", []string{"--help"}, exitOK, "airlock node agent --config /etc/airlock/airlock.yaml"},
		{"argument", []string{"--config", cfg, "extra"}, exitUsage, `unexpected argument "extra"`},
		{"negative interval", []string{"--config", cfg, "--interval", "-1s"}, exitUsage, "must be positive"},
		{"interval under 1s in the file", []string{"--config", bad}, exitFinding, "node.agent.interval: must be at least 1s"},
		{"missing config", []string{"--config", filepath.Join(dir, "none.yaml")}, exitFinding, "none.yaml"},
		{"listen in use", []string{"--config", cfg, "--root", dir, "--listen", busy.Addr().String()}, exitFinding, "pass --listen or set node.agent.listen"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(append([]string{"node", "agent"}, c.args...), &out, &errOut)
			if code != c.code || !strings.Contains(errOut.String(), c.want) {
				t.Errorf("node agent %q = %d, stderr %q; want %d with %q", c.args, code, errOut.String(), c.code, c.want)
			}
		})
	}
}

// get returns the status code and body of url ("" on a transport error).
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond every 20ms for up to a minute.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNodeAgentServes runs the agent on a fake nft and ip (the e2e test
// TestNodeAgentRepairsDriftE2E runs the binary on the real ones): ready
// after the first apply, an edited hosts.toml restored and counted, the
// node left as it is when it stops.
func TestNodeAgentServes(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	path := filepath.Join(dir, "airlock.yaml")
	writeFile(t, path, nodeTestConfig+"  root: "+root+"\n")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	fake := hostfwtest.New()
	addr := porttest.FreeAddr(t)
	logs := logcap.New("")
	log := logs.Logger()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- nodeAgent(ctx, nodeAgentOptions{cfgPath: path, listen: addr, interval: 50 * time.Millisecond, runner: fake}, cfg, log)
	}()
	base := "http://" + addr
	eventually(t, "/readyz 200", func() bool { code, _ := get(t, base+"/readyz"); return code == 200 })
	if code, body := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d %q, want 200", code, body)
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{
		`airlock_node_agent_applies_total{result="ok"} 1`,
		`airlock_node_agent_converged 1`,
		`airlock_node_agent_drift_repaired_total{what="file"} 0`,
		`airlock_node_agent_last_apply_timestamp_seconds `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	hosts := filepath.Join(root, "etc/containerd/certs.d/mcr.microsoft.com/hosts.toml")
	want, err := os.ReadFile(hosts)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, hosts, "server = \"https://mcr.microsoft.com\"\n")
	eventually(t, "the file repair counted", func() bool {
		_, m := get(t, base+"/metrics")
		return strings.Contains(m, `airlock_node_agent_drift_repaired_total{what="file"} 1`)
	})
	if got, _ := os.ReadFile(hosts); string(got) != string(want) {
		t.Errorf("hosts.toml after the repair = %q, want %q", got, want)
	}
	eventually(t, "/readyz 200 after the repair", func() bool { code, _ := get(t, base+"/readyz"); return code == 200 })

	cancel()
	if err := <-done; err != nil {
		t.Errorf("nodeAgent = %v, want nil after its context ended", err)
	}
	if fake.Tables["inet airlock_node"] == "" {
		t.Error("the table is gone after the agent stopped; isolation must stay")
	}
	for _, want := range []string{`"msg":"node agent: drift","component":"node-agent","what":"file"`, `"msg":"node agent: drift repaired"`, `"msg":"airlock node agent stopped`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}
