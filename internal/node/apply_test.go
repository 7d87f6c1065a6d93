package node

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"net/netip"
)

func testInput(mut ...func(*Input)) Input {
	in := Input{
		Config: Config{
			Root: "/", OutboundType: OutboundBlock, ArtifactSource: SourceCache,
			Registry: Addresses{"10.42.2.4:5000"}, Gateway: Addresses{"10.42.2.1"}, DNS: Addresses{"10.42.2.4:53"},
			AllowedAddresses: []string{"10.42.0.0/16"},
		},
		CacheRules: []CacheRule{
			{SourceRepo: "mcr.microsoft.com/*", TargetRepo: "aks-managed-repository/*"},
			{SourceRepo: "docker.io/*", TargetRepo: "docker/*"},
		},
	}
	in.Config.SetDefaults()
	in.Config.SandboxImage = "mcr.microsoft.com/oss/kubernetes/pause:3.6" // a cache rule covers it
	for _, m := range mut {
		m(&in)
	}
	return in
}

// snapshot maps every file under root (relative path) to its content;
// symlinks as "-> target".
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			m[rel] = "-> " + l
		case d.IsDir():
			m[rel+"/"] = ""
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func write(t *testing.T, root, path, content string) {
	t.Helper()
	p := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustApply(t *testing.T, n *Node, in Input) *Result {
	t.Helper()
	res, err := n.Apply(context.Background(), in)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func TestApplyEmptyRootThenNoChange(t *testing.T) {
	root := t.TempDir()
	fn := newFakeNet()
	n := New(root, fn, nil)
	res := mustApply(t, n, testInput())
	if len(res.Changes) == 0 {
		t.Fatal("first Apply on an empty root made no change")
	}
	got := snapshot(t, root)
	for _, p := range []string{
		"etc/containerd/config.toml",
		"etc/containerd/certs.d/mcr.microsoft.com/hosts.toml",
		"etc/containerd/certs.d/docker.io/hosts.toml",
		"etc/resolv.conf",
		"var/lib/airlock/node/state.json",
	} {
		if _, ok := got[p]; !ok {
			t.Errorf("after Apply on an empty root %s is missing; have %v", p, keys(got))
		}
	}
	if !strings.Contains(got["etc/containerd/config.toml"], `config_path = "/etc/containerd/certs.d"`) {
		t.Errorf("config.toml = %q, want config_path set", got["etc/containerd/config.toml"])
	}
	if !strings.Contains(got["etc/containerd/certs.d/mcr.microsoft.com/hosts.toml"], `[host."http://10.42.2.4:5000/v2/aks-managed-repository"]`) {
		t.Errorf("mcr hosts.toml = %q, want the path-style host entry", got["etc/containerd/certs.d/mcr.microsoft.com/hosts.toml"])
	}
	if got["etc/resolv.conf"] == "" || !strings.Contains(got["etc/resolv.conf"], "nameserver 10.42.2.4\n") {
		t.Errorf("resolv.conf = %q, want nameserver 10.42.2.4", got["etc/resolv.conf"])
	}
	if fn.table() == "" || fn.table() != Ruleset(RulesetInput{}) && !strings.Contains(fn.table(), "policy drop") {
		t.Errorf("table after Apply = %q, want the block ruleset", fn.table())
	}
	if !hasNote(res.Plan.Notes, "containerd must restart") {
		t.Errorf("Apply notes = %q, want one saying containerd must restart", res.Plan.Notes)
	}
	st := res.State
	if st.RuleCounts["egress"] == 0 || !st.Table {
		t.Errorf("state rule counts = %v table=%v, want egress rules", st.RuleCounts, st.Table)
	}
	for _, f := range st.Files {
		if !f.Created {
			t.Errorf("state file %s Created = false, want true on an empty root", f.Path)
		}
	}

	loads := fn.loads()
	res2 := mustApply(t, n, testInput())
	if len(res2.Changes) != 0 {
		t.Errorf("second Apply changes = %q, want none", res2.Changes)
	}
	if fn.loads() != loads {
		t.Errorf("second Apply loaded the ruleset again (%d loads, want %d)", fn.loads(), loads)
	}
	if diff := cmp.Diff(got, snapshot(t, root)); diff != "" {
		t.Errorf("second Apply changed files (-first +second):\n%s", diff)
	}
}

func hasNote(notes []string, s string) bool {
	for _, n := range notes {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestApplyConverges(t *testing.T) {
	root := t.TempDir()
	fn := newFakeNet()
	n := New(root, fn, nil)
	mustApply(t, n, testInput())
	// Drop the docker.io rule: its hosts.toml (and directory) go.
	res := mustApply(t, n, testInput(func(in *Input) { in.CacheRules = in.CacheRules[:1] }))
	if _, err := os.Stat(filepath.Join(root, "etc/containerd/certs.d/docker.io")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after removing the docker.io rule its certs.d directory: %v, want gone (changes %q)", err, res.Changes)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/containerd/certs.d/mcr.microsoft.com/hosts.toml")); err != nil {
		t.Errorf("mcr hosts.toml: %v, want kept", err)
	}
	// Direct and loadBalancer: every airlock file gone but resolv.conf,
	// the table removed.
	res = mustApply(t, n, testInput(func(in *Input) {
		in.Config.ArtifactSource = SourceDirect
		in.Config.OutboundType = OutboundLoadBalancer
	}))
	got := snapshot(t, root)
	for p := range got {
		if strings.HasPrefix(p, "etc/containerd/") && !strings.HasSuffix(p, "/") {
			t.Errorf("after Direct %s remains (changes %q)", p, res.Changes)
		}
	}
	if fn.table() != "" {
		t.Errorf("after loadBalancer the table is still there:\n%s", fn.table())
	}
	if res.State.Table || len(res.State.Mirrors) != 0 {
		t.Errorf("state after loadBalancer/Direct = table %v mirrors %v, want none", res.State.Table, res.State.Mirrors)
	}
	if got["etc/resolv.conf"] == "" {
		t.Error("resolv.conf removed by loadBalancer/Direct, want kept (dns is still set)")
	}
}

func TestResetRestoresBackupsAndSymlinks(t *testing.T) {
	root := t.TempDir()
	origConfig := "# site config\nversion = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"pause:3.9\"\n"
	write(t, root, "etc/containerd/config.toml", origConfig)
	write(t, root, "etc/containerd/certs.d/mcr.microsoft.com/hosts.toml", "server = \"https://mcr.microsoft.com\"\n")
	write(t, root, "run/resolvconf/resolv.conf", "nameserver 192.0.2.53\nsearch corp.example\n")
	if err := os.Symlink("../run/resolvconf/resolv.conf", filepath.Join(root, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	fn := newFakeNet()
	n := New(root, fn, nil)
	res := mustApply(t, n, testInput())
	after := snapshot(t, root)
	if !strings.Contains(after["etc/containerd/config.toml"], "# site config") || !strings.Contains(after["etc/containerd/config.toml"], "config_path") {
		t.Errorf("config.toml after apply = %q, want the site config plus config_path", after["etc/containerd/config.toml"])
	}
	if after["etc/resolv.conf"] != "# written by `airlock node apply`: every name is resolved by airlock DNS.\n# `airlock node reset` restores what was here before.\nnameserver 10.42.2.4\nsearch corp.example\n" {
		t.Errorf("resolv.conf after apply = %q", after["etc/resolv.conf"])
	}
	rec, _ := res.State.file("/etc/resolv.conf")
	if rec.LinkTarget != "../run/resolvconf/resolv.conf" {
		t.Errorf("state of resolv.conf = %+v, want its symlink target recorded", rec)
	}
	if rec, _ := res.State.file("/etc/containerd/config.toml"); rec.Created || rec.Backup == "" {
		t.Errorf("state of config.toml = %+v, want modified with a backup", rec)
	}
	// A second apply keeps the first backup (the original).
	mustApply(t, n, testInput(func(in *Input) { in.Config.Registry = Addresses{"10.42.2.5:5000"} }))

	changes, err := n.Reset(context.Background())
	if err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if diff := cmp.Diff(before, snapshot(t, root)); diff != "" {
		t.Errorf("Reset left the root different from before apply (-before +after):\n%s\nchanges: %q", diff, changes)
	}
	if fn.table() != "" {
		t.Errorf("Reset left the table:\n%s", fn.table())
	}
}

func TestResetAfterOutsideChanges(t *testing.T) {
	root := t.TempDir()
	write(t, root, "etc/resolv.conf", "nameserver 192.0.2.53\n")
	fn := newFakeNet()
	n := New(root, fn, nil)
	mustApply(t, n, testInput())
	// Behind airlock's back: the ruleset is flushed, a hosts.toml deleted,
	// resolv.conf edited.
	delete(fn.Tables, "inet "+Table)
	os.Remove(filepath.Join(root, "etc/containerd/certs.d/docker.io/hosts.toml"))
	write(t, root, "etc/resolv.conf", "nameserver 203.0.113.1\n")

	st, err := n.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantDrift := []string{"is missing (flushed?)", "docker.io/hosts.toml (hosts.toml docker.io) is missing", "/etc/resolv.conf (resolv.conf) changed since apply"}
	for _, w := range wantDrift {
		if !hasNote(st.Drift, w) {
			t.Errorf("Status drift = %q, want one containing %q", st.Drift, w)
		}
	}
	if _, err := n.Reset(context.Background()); err != nil {
		t.Fatalf("Reset after outside changes: %v", err)
	}
	got := snapshot(t, root)
	want := map[string]string{"./": "", "etc/": "", "etc/resolv.conf": "nameserver 192.0.2.53\n"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("root after Reset (-want +got):\n%s", diff)
	}
	if st, _ := n.Status(context.Background()); st.Applied {
		t.Errorf("Status after Reset: applied, want not applied")
	}
}

// TestApplyFaultsKeepPreviousState injects a failure at each step of an
// apply that changes everything, and checks the node (files, table,
// state) is exactly as the previous apply left it.
func TestApplyFaultsKeepPreviousState(t *testing.T) {
	changed := func(in *Input) {
		in.Config.Registry = Addresses{"10.42.2.5:5000"}
		in.Config.DNS = Addresses{"10.42.2.5:53"}
		in.CacheRules = append(in.CacheRules, CacheRule{SourceRepo: "quay.io/*", TargetRepo: "quay/*"})
	}
	tests := []struct {
		name   string
		inject func(t *testing.T, root string, n *Node, fn *fakeNet)
		want   string
	}{
		{"certs.d unwritable", func(t *testing.T, root string, n *Node, fn *fakeNet) {
			// A file where the new host's directory must go: mkdir fails
			// even for root.
			write(t, root, "etc/containerd/certs.d/quay.io", "in the way")
		}, "staging files"},
		{"nft check fails", func(t *testing.T, root string, n *Node, fn *fakeNet) {
			fn.Fail = failOn("nft -c -f -")
		}, "checking the ruleset"},
		{"nft load fails", func(t *testing.T, root string, n *Node, fn *fakeNet) {
			fn.Fail = failOn("nft -f -")
		}, "loading the ruleset"},
		{"second rename fails", func(t *testing.T, root string, n *Node, fn *fakeNet) {
			calls := 0
			n.rename = func(o, p string) error {
				if calls++; calls == 2 {
					return errors.New("injected rename failure")
				}
				return os.Rename(o, p)
			}
		}, "injected rename failure"},
		{"state save fails", func(t *testing.T, root string, n *Node, fn *fakeNet) {
			n.rename = func(o, p string) error {
				if strings.HasSuffix(p, "state.json") {
					return errors.New("injected state failure")
				}
				return os.Rename(o, p)
			}
		}, "injected state failure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, root, "etc/resolv.conf", "nameserver 192.0.2.53\n")
			fn := newFakeNet()
			n := New(root, fn, nil)
			mustApply(t, n, testInput())
			tt.inject(t, root, n, fn)
			files, metas, table := snapshot(t, root), metaSnapshot(t, root), fn.table()
			_, err := n.Apply(context.Background(), testInput(changed))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply with %s = %v, want an error containing %q", tt.name, err, tt.want)
			}
			if diff := cmp.Diff(files, snapshot(t, root)); diff != "" {
				t.Errorf("files after the failed Apply differ from before (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(metas, metaSnapshot(t, root)); diff != "" {
				t.Errorf("modes or owners after the failed Apply differ from before (-before +after):\n%s", diff)
			}
			if fn.table() != table {
				t.Errorf("table after the failed Apply =\n%s\nwant the previous one\n%s", fn.table(), table)
			}
			// The node still works: with the fault gone apply succeeds.
			fn.Fail = nil
			n.rename = os.Rename
			os.Remove(filepath.Join(root, "etc/containerd/certs.d/quay.io"))
			if res := mustApply(t, n, testInput(changed)); !strings.Contains(fn.table(), "10.42.2.5") || len(res.Changes) == 0 {
				t.Errorf("Apply after removing the fault: table %q changes %q", fn.table(), res.Changes)
			}
		})
	}
}

func failOn(call string) func(string) error {
	return func(c string) error {
		if c == call {
			return errors.New("injected " + call + " failure")
		}
		return nil
	}
}

func TestApplyUserDefinedRoutingRoute(t *testing.T) {
	root := t.TempDir()
	fn := newFakeNet()
	n := New(root, fn, nil)
	udr := func(in *Input) { in.Config.OutboundType = OutboundUserDefinedRouting }
	res := mustApply(t, n, testInput(udr))
	if r := fn.route("4"); r == nil || r.Gateway != "10.42.2.1" {
		t.Fatalf("default route after udr apply = %+v, want via 10.42.2.1", r)
	}
	if p := res.State.Route.Previous; p == nil || p.Gateway != "198.18.1.1" || p.Dev != "eth0" {
		t.Errorf("recorded previous route = %+v, want via 198.18.1.1 dev eth0", p)
	}
	if !strings.Contains(fn.table(), "rt ip nexthop 10.42.2.1 accept") {
		t.Errorf("udr table lacks the nexthop rule:\n%s", fn.table())
	}
	if res := mustApply(t, n, testInput(udr)); len(res.Changes) != 0 {
		t.Errorf("second udr apply changes = %q, want none", res.Changes)
	}
	// Back to block: the route is restored.
	mustApply(t, n, testInput())
	if r := fn.route("4"); r == nil || r.Gateway != "198.18.1.1" || r.Dev != "eth0" {
		t.Errorf("default route after switching to block = %+v, want via 198.18.1.1 dev eth0", r)
	}
	mustApply(t, n, testInput(udr))
	if _, err := n.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := fn.route("4"); r == nil || r.Gateway != "198.18.1.1" {
		t.Errorf("default route after reset = %+v, want via 198.18.1.1", r)
	}
}

func TestApplyErrorsSayWhatToDo(t *testing.T) {
	tests := []struct {
		name string
		mut  func(*Input)
		want string
	}{
		{"resolv.conf with a port", func(in *Input) { in.Config.DNS = Addresses{"10.42.2.4:5353"}; in.Config.Resolver = ResolverResolvConf }, "serve airlock DNS on port 53"},
		{"block without registry", func(in *Input) { in.Config.Registry = nil; in.Config.ArtifactSource = SourceDirect }, "set node.registry"},
		{"udr without gateway", func(in *Input) { in.Config.OutboundType = OutboundUserDefinedRouting; in.Config.Gateway = nil }, "set node.gateway"},
		{"cache without rules", func(in *Input) { in.CacheRules = nil }, "add a cache rule"},
		{"containerd config version 1", func(in *Input) {}, "version = 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.name == "containerd config version 1" {
				write(t, root, "etc/containerd/config.toml", "[plugins.cri]\n  sandbox_image = \"x\"\n")
			}
			fn := newFakeNet()
			_, err := New(root, fn, nil).Apply(context.Background(), testInput(tt.mut))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Apply(%s) = %v, want an error containing %q", tt.name, err, tt.want)
			}
			if len(fn.Calls) > 0 && fn.loads() > 0 {
				t.Errorf("Apply(%s) loaded a ruleset before failing", tt.name)
			}
		})
	}
}

func TestDryRunPrintsEverything(t *testing.T) {
	root := t.TempDir()
	n := New(root, newFakeNet(), nil)
	p, err := n.Plan(testInput())
	if err != nil {
		t.Fatal(err)
	}
	out := p.DryRun()
	for _, want := range []string{
		Ruleset(RulesetInput{Outbound: OutboundBlock, Registry: []netip.AddrPort{mustAP("10.42.2.4:5000")}, DNS: []netip.AddrPort{mustAP("10.42.2.4:53")}, Allowed: nil})[:60],
		"counter drop comment",
		"# /etc/containerd/certs.d/docker.io/hosts.toml (hosts.toml docker.io)\n" + HostsTOML(Mirror{Upstream: "docker.io", Prefix: "docker"}, MirrorEndpoint{Registries: []string{"10.42.2.4:5000"}}),
		"# /etc/resolv.conf (resolv.conf)\n",
		"# /etc/containerd/config.toml (containerd config)\nversion = 2\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("DryRun lacks %q:\n%s", want, out)
		}
	}
	if got := snapshot(t, root); len(got) != 1 {
		t.Errorf("Plan wrote files: %v", keys(got))
	}
}

func mustAP(s string) (ap netip.AddrPort) { ap, _ = parseHostPort(s); return ap }
