package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/hostfw/hostfwtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// agentRig is an agent on a fake nft/ip and a temporary root, driven
// round by round from the test's goroutine.
type agentRig struct {
	t     *testing.T
	root  string
	net   *fakeNet
	agent *Agent
	m     *AgentMetrics
	in    Input
	inErr error
	ready string
}

func newAgentRig(t *testing.T, in Input) *agentRig {
	r := &agentRig{t: t, root: t.TempDir(), net: newFakeNet(), in: in}
	write(t, r.root, "etc/resolv.conf", "search example.internal\nnameserver 192.0.2.53\n")
	r.m = NewAgentMetrics(prometheus.NewRegistry())
	r.agent = NewAgent(New(r.root, r.net, nil), AgentOptions{
		Input:    func() (Input, error) { return r.in, r.inErr },
		Interval: time.Hour,
		Metrics:  r.m,
		SetReady: func(reason string) { r.ready = reason },
	})
	return r
}

// round runs one round and checks its outcome against want (converged).
func (r *agentRig) round(what string, want bool) {
	r.t.Helper()
	if got := r.agent.round(context.Background()); got != want {
		r.t.Fatalf("%s: round() = %v (ready: %q), want %v", what, got, r.ready, want)
	}
	if want && r.ready != "" {
		r.t.Errorf("%s: readiness = %q, want ready", what, r.ready)
	}
	if !want && r.ready == "" {
		r.t.Errorf("%s: readiness = ready, want a reason", what)
	}
	conv := 0.0
	if want {
		conv = 1
	}
	if got := testutil.ToFloat64(r.m.Converged); got != conv {
		r.t.Errorf("%s: converged = %v, want %v", what, got, conv)
	}
}

func (r *agentRig) repaired(what string) float64 {
	return testutil.ToFloat64(r.m.Repaired.WithLabelValues(what))
}

func (r *agentRig) applies(result string) float64 {
	return testutil.ToFloat64(r.m.Applies.WithLabelValues(result))
}

func (r *agentRig) read(path string) string {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.root, path))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

func TestAgentRepairsEveryKindOfDrift(t *testing.T) {
	r := newAgentRig(t, testInput(func(in *Input) {
		in.Config.OutboundType = OutboundUserDefinedRouting
		in.Config.DNS = Addresses{"10.42.2.4:53"}
	}))
	r.round("first round", true)
	if got := r.applies("ok"); got != 1 {
		t.Errorf("applies ok after start = %v, want 1", got)
	}
	if testutil.ToFloat64(r.m.LastApply) == 0 {
		t.Error("last apply timestamp = 0 after a successful apply")
	}
	hosts := "etc/containerd/certs.d/mcr.microsoft.com/hosts.toml"
	wantHosts, wantResolv, wantTable := r.read(hosts), r.read("etc/resolv.conf"), r.net.table()
	r.round("no drift", true)
	if got := r.applies("ok"); got != 1 {
		t.Errorf("applies ok after a round without drift = %v, want 1 (no apply)", got)
	}

	cases := []struct {
		what  string
		drift func()
		check func() bool
	}{
		{DriftFile, func() { write(t, r.root, hosts, "server = \"https://mcr.microsoft.com\"\n") },
			func() bool { return r.read(hosts) == wantHosts }},
		{DriftFile, func() { os.Remove(filepath.Join(r.root, hosts)) },
			func() bool { return r.read(hosts) == wantHosts }},
		{DriftRuleset, func() { delete(r.net.Tables, "inet "+Table) },
			func() bool { return r.net.table() == wantTable }},
		{DriftRuleset, func() { // one rule replaced by another: same counts
			r.net.Tables["inet "+Table] = strings.Replace(wantTable, "counter drop", "accept", 1)
		}, func() bool { return r.net.table() == wantTable }},
		{DriftResolver, func() { write(t, r.root, "etc/resolv.conf", "search example.internal\nnameserver 8.8.8.8\n") },
			func() bool { return r.read("etc/resolv.conf") == wantResolv }},
		{DriftRoute, func() {
			r.net.Routes["4 main"] = []hostfwtest.Route{{Dst: "default", Gateway: "198.18.1.1", Dev: "eth0"}}
		}, func() bool { return r.net.route("4").Gateway == "10.42.2.1" }},
		{DriftState, func() { os.Remove(filepath.Join(r.root, StateDir, "state.json")) },
			func() bool { _, err := os.Stat(filepath.Join(r.root, StateDir, "state.json")); return err == nil }},
		// The state came back with its record of the files: a change is
		// still seen.
		{DriftFile, func() { write(t, r.root, hosts, "edited after the state came back\n") },
			func() bool { return r.read(hosts) == wantHosts }},
	}
	for i, c := range cases {
		before := r.repaired(c.what)
		c.drift()
		r.round(c.what+" drift", true)
		if !c.check() {
			t.Errorf("case %d (%s): not repaired", i, c.what)
		}
		if got := r.repaired(c.what); got != before+1 {
			t.Errorf("case %d: drift_repaired_total{what=%q} = %v, want %v", i, c.what, got, before+1)
		}
	}
	if got, want := r.applies("ok"), float64(1+len(cases)); got != want {
		t.Errorf("applies ok = %v, want %v", got, want)
	}
	if got := r.applies("error"); got != 0 {
		t.Errorf("applies error = %v, want 0", got)
	}

	// airlock node reset while the agent runs: it applies again (fail
	// closed), and a reset after it still restores the original files.
	n := New(r.root, r.net, nil)
	if _, err := n.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.round("after a reset", true)
	if r.net.table() != wantTable || r.read("etc/resolv.conf") != wantResolv {
		t.Error("the agent did not apply again after a reset")
	}
	if _, err := n.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := r.read("etc/resolv.conf"), "search example.internal\nnameserver 192.0.2.53\n"; got != want {
		t.Errorf("resolv.conf after the final reset = %q, want the original %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(r.root, hosts)); err == nil {
		t.Errorf("%s still there after the final reset", hosts)
	}
}

func TestAgentApplyFailureIsNotReadyThenRecovers(t *testing.T) {
	r := newAgentRig(t, testInput())
	r.net.Fail = hostfwtest.FailOn("nft -f -")
	r.round("apply failing", false)
	if !strings.Contains(r.ready, "apply failed") {
		t.Errorf("readiness = %q, want apply failed", r.ready)
	}
	if got := r.applies("error"); got != 1 {
		t.Errorf("applies error = %v, want 1", got)
	}
	r.net.Fail = nil
	r.round("nft works again", true)
	if r.net.table() == "" {
		t.Error("no table after the retry")
	}

	// Drift that an apply cannot repair: the table missing and nft -f
	// failing keeps the agent not ready, counting the failure.
	delete(r.net.Tables, "inet "+Table)
	r.net.Fail = hostfwtest.FailOn("nft -f -")
	r.round("drift, apply failing", false)
	if got := r.repaired(DriftRuleset); got != 0 {
		t.Errorf("ruleset repairs while nft fails = %v, want 0", got)
	}
	r.net.Fail = nil
	r.round("repaired", true)
	if got := r.repaired(DriftRuleset); got != 1 {
		t.Errorf("ruleset repairs = %v, want 1", got)
	}
}

func TestAgentConfig(t *testing.T) {
	r := newAgentRig(t, testInput())
	r.inErr = errors.New("node.registry: required")
	r.round("config invalid from the start", false)
	if !strings.Contains(r.ready, "config: node.registry") {
		t.Errorf("readiness = %q, want the config error", r.ready)
	}
	if r.net.loads() != 0 {
		t.Errorf("nft loads with no valid config = %d, want 0", r.net.loads())
	}
	r.inErr = nil
	r.round("config valid", true)

	// A later bad config keeps the last good one.
	r.inErr = errors.New("broken")
	r.round("config broken later", true)

	// A changed config is applied at the next round.
	r.inErr = nil
	r.in.CacheRules = append(r.in.CacheRules, CacheRule{SourceRepo: "quay.io/*", TargetRepo: "quay/*"})
	r.round("config changed", true)
	if _, err := os.Stat(filepath.Join(r.root, "etc/containerd/certs.d/quay.io/hosts.toml")); err != nil {
		t.Errorf("hosts.toml of the new rule: %v", err)
	}
}

func TestAgentRunStopsAndLeavesTheNode(t *testing.T) {
	root := t.TempDir()
	fn := newFakeNet()
	readyc := make(chan string, 100)
	a := NewAgent(New(root, fn, nil), AgentOptions{
		Input:    func() (Input, error) { return testInput(), nil },
		Interval: 10 * time.Millisecond,
		SetReady: func(reason string) { readyc <- reason },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	deadline := time.After(time.Minute)
	for ready := false; !ready; {
		select {
		case reason := <-readyc:
			ready = reason == ""
		case <-deadline:
			t.Fatal("agent not ready within a minute")
		}
	}
	a.Check()
	cancel()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of its context ending")
	}
	if fn.table() == "" {
		t.Error("the table is gone after the agent stopped; isolation must stay")
	}
	if _, err := os.Stat(filepath.Join(root, StateDir, "state.json")); err != nil {
		t.Errorf("state after the agent stopped: %v", err)
	}
}
