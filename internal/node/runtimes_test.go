package node

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDetectRuntimes(t *testing.T) {
	called := false
	versionOf = func(string) string { called = true; return "x" }
	t.Cleanup(func() { versionOf = defaultVersionOf })

	root := t.TempDir()
	n := New(root, newFakeNet(), nil)
	c := testInput().Config
	got, _ := n.detectRuntimes(c)
	if len(got) != 1 || got[0].Runtime != RuntimeContainerd || got[0].Found || got[0].Listed {
		t.Errorf("nothing on the node: %+v, want containerd alone (unfound, unlisted)", got)
	}

	write(t, root, "usr/bin/crio", "")
	write(t, root, "usr/local/bin/podman", "")
	write(t, root, "etc/docker/certs.d/x/ca.crt", "") // not dockerd's alone
	got, _ = n.detectRuntimes(c)
	for _, r := range got {
		if r.Runtime == RuntimeDocker {
			t.Errorf("an /etc/docker without daemon.json or dockerd detected as docker: %+v", r)
		}
	}
	write(t, root, "etc/docker/daemon.json", "{}")
	write(t, root, "etc/containerd/config.toml", "# c\nversion = 3 # containerd 2\n[plugins]\n")
	got, _ = n.detectRuntimes(c)
	var names []string
	for _, r := range got {
		names = append(names, r.String())
	}
	want := []string{
		"containerd (found /etc/containerd/config.toml), config version 3",
		"cri-o (found /usr/bin/crio)",
		"podman (found /usr/local/bin/podman)",
		"docker (found /etc/docker/daemon.json)",
	}
	if !slices.Equal(names, want) {
		t.Errorf("detected %q, want %q", names, want)
	}
	if called {
		t.Error("--version was run for a binary under a root other than /")
	}

	// node.runtimes: a listed runtime not found is configured anyway.
	root2 := t.TempDir()
	c.Runtimes = []Runtime{RuntimeDocker}
	got, _ = New(root2, newFakeNet(), nil).detectRuntimes(c)
	if len(got) != 1 || got[0].Runtime != RuntimeDocker || !got[0].Listed || got[0].Found ||
		!strings.Contains(got[0].String(), "not found on this node: configured anyway") {
		t.Errorf("listed docker on an empty node: %+v %q", got, got[0].String())
	}

	// Root "/": binaries on PATH count and their version is read.
	r := New("/", newFakeNet(), nil)
	found, _ := r.detectRuntimes(Config{ContainerdConfig: "/nonexistent/config.toml"})
	for _, info := range found {
		if info.Found && strings.HasPrefix(info.Evidence, "/") && info.Version != "x" && info.Evidence != "/etc/docker/daemon.json" && info.Evidence != "/etc/crio" {
			t.Errorf("%s found at %s without its version", info.Runtime, info.Evidence)
		}
	}
}

var defaultVersionOf = versionOf

// TestRuntimesListIsTheWholeList: with node.runtimes set, a runtime found
// but not listed gets no files, only a note; and reset keeps a directory
// that was there before apply, even when apply wrote into it.
func TestRuntimesListIsTheWholeList(t *testing.T) {
	root := t.TempDir()
	write(t, root, "usr/bin/podman", "")
	if err := os.MkdirAll(filepath.Join(root, "etc/docker"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	n := New(root, newFakeNet(), nil)
	res := mustApply(t, n, testInput(func(in *Input) { in.Config.Runtimes = []Runtime{RuntimeContainerd, RuntimeDocker} }))
	after := snapshot(t, root)
	if _, ok := after["etc/docker/daemon.json"]; !ok {
		t.Error("docker listed: no daemon.json written")
	}
	for p := range after {
		if strings.HasPrefix(p, "etc/containers/") {
			t.Errorf("podman found but not listed: %s written", p)
		}
	}
	if !hasNote(res.Plan.Notes, "podman found (/usr/bin/podman) but not in node.runtimes: not pinned") {
		t.Errorf("notes %q lack the unlisted podman", res.Plan.Notes)
	}
	if _, err := n.Reset(context.Background()); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if diff := cmp.Diff(before, snapshot(t, root)); diff != "" {
		t.Errorf("after reset the root differs from before apply (-before +after):\n%s", diff)
	}
}

func TestRegistriesConfGolden(t *testing.T) {
	rules := []CacheRule{
		{SourceRepo: "mcr.microsoft.com/*", TargetRepo: "aks-managed-repository/*"},
		{SourceRepo: "quay.io/prometheus/*", TargetRepo: "quay/prometheus/*"},
		{SourceRepo: "registry.k8s.io/pause", TargetRepo: "k8s/pause"},
		{SourceRepo: "ghcr.io/*", TargetRepo: "*"},
	}
	for _, tc := range []struct {
		name string
		e    MirrorEndpoint
	}{
		{"registries-conf", MirrorEndpoint{Registries: []string{"10.42.2.4:5000"}}},
		{"registries-conf-replicas-tls", MirrorEndpoint{Registries: []string{"10.42.2.4:5000", "10.42.2.5:5000"}, TLS: true}},
	} {
		got, err := RegistriesConf(rules, tc.e)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, tc.name, got)
	}
	if _, err := RegistriesConf([]CacheRule{{SourceRepo: "x.io/*", TargetRepo: "airlock-unpinned/*"}}, MirrorEndpoint{Registries: []string{"10.0.0.1:5000"}}); err == nil {
		t.Error("a rule targeting the catch-all repository was accepted")
	}
}

func TestMergeDaemonJSON(t *testing.T) {
	mirrors := []string{"http://10.42.2.4:5000", "http://10.42.2.5:5000"}
	insecure := []string{"10.42.2.4:5000", "10.42.2.5:5000"}
	cur := `{
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m"},
  "registry-mirrors": ["https://mirror.gcr.io"],
  "insecure-registries": ["10.9.9.9:5000", "10.42.2.4:5000"],
  "exec-opts": ["native.cgroupdriver=systemd"]
}`
	got, notes, err := MergeDaemonJSON(cur, mirrors, insecure)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "daemon-json-merged", got)
	if len(notes) != 1 || !strings.Contains(notes[0], "https://mirror.gcr.io") {
		t.Errorf("notes = %q, want one naming the replaced mirror", notes)
	}
	again, notes, err := MergeDaemonJSON(got, mirrors, insecure)
	if err != nil || again != got || len(notes) != 0 {
		t.Errorf("merging twice changed it: %v %q\n%s", err, notes, again)
	}
	empty, _, err := MergeDaemonJSON("", mirrors[:1], nil)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "daemon-json-new-tls", empty)

	for _, bad := range []string{`{"a":1`, `[]`, `null`, `{"a":1} {"b":2}`, `{"registry-mirrors": "http://x"}`, `{"insecure-registries": [1]}`, "\xff"} {
		if _, _, err := MergeDaemonJSON(bad, mirrors, insecure); err == nil {
			t.Errorf("MergeDaemonJSON(%q) accepted it", bad)
		}
	}
}

// FuzzMergeDaemonJSON: whatever daemon.json holds, the merge either
// refuses it or writes a JSON object that keeps every other key as it
// was, has exactly airlock's mirrors, and is a fixed point.
func FuzzMergeDaemonJSON(f *testing.F) {
	for _, s := range []string{"", "{}", `{"registry-mirrors":["https://m"],"debug":true}`, `{"insecure-registries":["a:1"]}`, `{"a":{"b":[1,2,{"c":null}]}}`, `{"a":1,"a":2}`, " \n", `{"registry-mirrors":null}`} {
		f.Add(s)
	}
	mirrors := []string{"http://10.0.0.1:5000"}
	insecure := []string{"10.0.0.1:5000"}
	f.Fuzz(func(t *testing.T, in string) {
		out, _, err := MergeDaemonJSON(in, mirrors, insecure)
		if err != nil {
			return
		}
		var before, after map[string]json.RawMessage
		if strings.TrimSpace(in) != "" {
			if err := json.Unmarshal([]byte(in), &before); err != nil {
				t.Fatalf("accepted %q that does not parse: %v", in, err)
			}
		}
		if err := json.Unmarshal([]byte(out), &after); err != nil {
			t.Fatalf("wrote invalid JSON %q: %v", out, err)
		}
		for k, v := range before {
			if k == "registry-mirrors" || k == "insecure-registries" {
				continue
			}
			var a, b bytes.Buffer
			json.Compact(&a, v)
			json.Compact(&b, after[k])
			if a.String() != b.String() {
				t.Fatalf("key %q changed: %s → %s", k, a.String(), b.String())
			}
		}
		var m []string
		if err := json.Unmarshal(after["registry-mirrors"], &m); err != nil || !slices.Equal(m, mirrors) {
			t.Fatalf("registry-mirrors = %s, want %q", after["registry-mirrors"], mirrors)
		}
		var ins []string
		if err := json.Unmarshal(after["insecure-registries"], &ins); err != nil || !slices.Contains(ins, insecure[0]) {
			t.Fatalf("insecure-registries = %s, want it to hold %q", after["insecure-registries"], insecure)
		}
		again, _, err := MergeDaemonJSON(out, mirrors, insecure)
		if err != nil || again != out {
			t.Fatalf("not a fixed point: %v\n%s\n%s", err, out, again)
		}
	})
}

// TestApplyRuntimes: with CRI-O, podman and Docker on the node, apply
// writes the registries.conf drop-in, CRI-O's pause_image drop-in and
// daemon.json (keeping its keys), says what must restart, status lists
// each runtime's files and their drift, and reset puts every file back.
func TestApplyRuntimes(t *testing.T) {
	root := t.TempDir()
	write(t, root, "usr/bin/crio", "")
	write(t, root, "usr/bin/podman", "")
	write(t, root, "usr/bin/dockerd", "")
	write(t, root, "etc/docker/daemon.json", `{"log-level": "warn"}`)
	write(t, root, "etc/containers/registries.conf", "[registries.search]\nregistries = ['docker.io']\n") // v1: converted, fine
	before := snapshot(t, root)
	n := New(root, newFakeNet(), nil)
	in := testInput(func(in *Input) {
		in.CacheRules = append(in.CacheRules, CacheRule{SourceRepo: "registry.k8s.io/*", TargetRepo: "k8s/*"})
	})
	res := mustApply(t, n, in)
	var rts []Runtime
	for _, r := range res.Plan.Runtimes {
		rts = append(rts, r.Runtime)
	}
	if !slices.Equal(rts, []Runtime{RuntimeCRIO, RuntimePodman, RuntimeDocker}) {
		t.Errorf("runtimes = %v", rts)
	}
	after := snapshot(t, root)
	if !strings.Contains(after["etc/containers/registries.conf.d/99-airlock.conf"], `location = "10.42.2.4:5000/aks-managed-repository"`) {
		t.Errorf("registries.conf drop-in:\n%s", after["etc/containers/registries.conf.d/99-airlock.conf"])
	}
	if got := after["etc/crio/crio.conf.d/99-airlock.conf"]; !strings.Contains(got, `pause_image = "`+in.Config.SandboxImage+`"`) {
		t.Errorf("CRI-O drop-in:\n%s", got)
	}
	var dj map[string]any
	if err := json.Unmarshal([]byte(after["etc/docker/daemon.json"]), &dj); err != nil || dj["log-level"] != "warn" || dj["registry-mirrors"] == nil {
		t.Errorf("daemon.json = %s (%v)", after["etc/docker/daemon.json"], err)
	}
	if _, ok := after["etc/containerd/certs.d/mcr.microsoft.com/hosts.toml"]; ok {
		t.Error("hosts.toml written though containerd is neither found nor listed")
	}
	dry := res.Plan.DryRun()
	for _, s := range []string{"# runtime: cri-o (found /usr/bin/crio); systemctl reload crio", "# runtime: docker (found /usr/bin/dockerd); systemctl reload docker"} {
		if !strings.Contains(dry, s) {
			t.Errorf("dry run lacks %q:\n%.600s", s, dry)
		}
	}
	if res2 := mustApply(t, n, in); len(res2.Changes) != 0 {
		t.Errorf("second apply changed %q", res2.Changes)
	}

	write(t, root, "etc/docker/daemon.json", `{"log-level": "debug"}`)
	st, err := n.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	st.Print(&buf)
	for _, s := range []string{
		"runtime:        cri-o (found /usr/bin/crio)",
		"/etc/containers/registries.conf.d/99-airlock.conf (containers-registries.conf drop-in): as applied",
		"/etc/crio/crio.conf.d/99-airlock.conf (CRI-O pause_image drop-in): as applied",
		"/etc/docker/daemon.json (dockerd daemon.json): changed since apply",
	} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("status lacks %q:\n%s", s, buf.String())
		}
	}
	if len(st.Runtimes) != 3 || len(st.Runtimes[1].Files) != 1 {
		t.Errorf("status runtimes = %+v", st.Runtimes)
	}
	write(t, root, "etc/docker/daemon.json", `{"log-level": "warn"}`)
	if _, err := n.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkDiffUnit(t, before, snapshot(t, root))

	// Direct removes them again after a Cache apply.
	mustApply(t, n, in)
	in.Config.ArtifactSource = SourceDirect
	mustApply(t, n, in)
	if got := snapshot(t, root)["etc/docker/daemon.json"]; got != `{"log-level": "warn"}` {
		t.Errorf("daemon.json after Direct = %q", got)
	}
}

func checkDiffUnit(t *testing.T, want, got map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("after reset %s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && !strings.HasPrefix(k, "var/") {
			t.Errorf("after reset: unexpected %s", k)
		}
	}
}

func TestApplyRuntimesRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, file, content, want string
		mut                       func(*Input)
	}{
		{"invalid daemon.json", "etc/docker/daemon.json", `{"debug": true,}`, "is not a JSON object", nil},
		{"mirror flag", "etc/systemd/system/docker.service.d/override.conf", "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd --registry-mirror=https://m\n", "--registry-mirror", nil},
		{"registriesConf not .conf", "", "", "reads only *.conf", func(in *Input) { in.Config.RegistriesConf = "/etc/containers/registries.conf.d/airlock" }},
		{"v1 drop-in", "etc/containers/registries.conf.d/50-site.conf", "[registries.search]\nregistries = ['docker.io']\n", "refuses a v1 drop-in", nil},
		{"v1 and v2 mixed", "etc/containers/registries.conf", "unqualified-search-registries = ['docker.io']\n[registries.block]\nregistries = ['quay.io']\n", "mixes the v1", nil},
		{"registries.conf not TOML", "etc/containers/registries.conf", "[[registry]\n", "is not valid TOML", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, root, "usr/bin/dockerd", "")
			write(t, root, "usr/bin/podman", "")
			if tc.file != "" {
				write(t, root, tc.file, tc.content)
			}
			before := snapshot(t, root)
			in := testInput()
			if tc.mut != nil {
				tc.mut(&in)
			}
			_, err := New(root, newFakeNet(), nil).Apply(context.Background(), in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Apply = %v, want an error with %q", err, tc.want)
			}
			checkDiffUnit(t, before, snapshot(t, root))
		})
	}
}

// TestApplyListedRuntimeIsStable: a runtime listed but not found gets its
// files, and the directories apply created for them are no evidence the
// next time: the second apply changes nothing.
func TestApplyListedRuntimeIsStable(t *testing.T) {
	root := t.TempDir()
	n := New(root, newFakeNet(), nil)
	in := testInput(func(in *Input) {
		in.Config.Runtimes = []Runtime{RuntimeCRIO, RuntimeDocker}
		in.CacheRules = append(in.CacheRules, CacheRule{SourceRepo: "registry.k8s.io/*", TargetRepo: "k8s/*"})
	})
	mustApply(t, n, in)
	first := snapshot(t, root)
	if res := mustApply(t, n, in); len(res.Changes) != 0 || !slices.Equal(keys(first), keys(snapshot(t, root))) || first["var/lib/airlock/node/state.json"] != snapshot(t, root)["var/lib/airlock/node/state.json"] {
		t.Errorf("second apply changed %q", res.Changes)
	}
	if _, err := n.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	if left := snapshot(t, root); len(left) != 1 {
		t.Errorf("after reset: %q, want the empty root", keys(left))
	}
}

// TestApplyRuntimesCA: with node.registryCAFile, containers/image and
// dockerd get the CA where they read it, per replica; reset removes it.
func TestApplyRuntimesCA(t *testing.T) {
	root := t.TempDir()
	write(t, root, "usr/bin/podman", "")
	write(t, root, "usr/bin/dockerd", "")
	write(t, root, "etc/airlock/ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	before := snapshot(t, root)
	n := New(root, newFakeNet(), nil)
	in := testInput(func(in *Input) {
		in.Config.RegistryCAFile = "/etc/airlock/ca.pem"
		in.Config.Registry = Addresses{"10.42.2.4:5000", "10.42.2.5:5000"}
	})
	res := mustApply(t, n, in)
	after := snapshot(t, root)
	for _, p := range []string{"etc/containers/certs.d/10.42.2.4:5000/ca.crt", "etc/containers/certs.d/10.42.2.5:5000/ca.crt", "etc/docker/certs.d/10.42.2.4:5000/ca.crt"} {
		if after[p] != before["etc/airlock/ca.pem"] {
			t.Errorf("%s = %q, want the CA", p, after[p])
		}
	}
	if strings.Contains(after["etc/containers/registries.conf.d/99-airlock.conf"], "insecure") {
		t.Error("registries.conf marks a TLS registry insecure")
	}
	if strings.Contains(after["etc/docker/daemon.json"], "insecure-registries") || !strings.Contains(after["etc/docker/daemon.json"], "https://10.42.2.4:5000") {
		t.Errorf("daemon.json for a TLS registry:\n%s", after["etc/docker/daemon.json"])
	}
	st, err := n.Status(context.Background())
	if err != nil || len(st.Runtimes) != 2 || len(st.Runtimes[0].Files) != 3 || len(st.Runtimes[1].Files) != 3 {
		t.Errorf("status runtimes = %+v %v, want podman and docker with 3 files each", st.Runtimes, err)
	}
	_ = res
	if _, err := n.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkDiffUnit(t, before, snapshot(t, root))

	in.Config.RegistryCAFile = "/etc/airlock/missing.pem"
	if _, err := n.Apply(context.Background(), in); err == nil || !strings.Contains(err.Error(), "node.registryCAFile") {
		t.Errorf("Apply with a missing CA file = %v", err)
	}
}

// FuzzCheckRegistriesFiles: whatever the main registries.conf and a
// drop-in hold, the check returns (an error or nil) without a panic, and
// never refuses a file that is only v2 tables airlock itself writes.
func FuzzCheckRegistriesFiles(f *testing.F) {
	for _, s := range []string{"", "[[registry]]\nprefix = \"a\"\nlocation = \"b\"\n", "[registries.search]\nregistries = ['x']\n", "registries = 3\n", "[registries]\nsearch = 1\n", "[[registry]\n"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, mainFile, dropIn string) {
		root := t.TempDir()
		write(t, root, "etc/containers/registries.conf", mainFile)
		write(t, root, "etc/containers/registries.conf.d/50-x.conf", dropIn)
		ours, _ := RegistriesConf([]CacheRule{{SourceRepo: "mcr.microsoft.com/*", TargetRepo: "m/*"}}, MirrorEndpoint{Registries: []string{"10.0.0.1:5000"}})
		write(t, root, "etc/containers/registries.conf.d/99-airlock.conf", ours)
		n := New(root, newFakeNet(), nil)
		_ = n.checkRegistriesFiles("/etc/containers/registries.conf.d/99-airlock.conf")
		write(t, root, "etc/containers/registries.conf.d/50-x.conf", ours)
		write(t, root, "etc/containers/registries.conf", ours)
		if err := n.checkRegistriesFiles("/etc/containers/registries.conf.d/99-airlock.conf"); err != nil {
			t.Fatalf("airlock's own file refused: %v", err)
		}
	})
}
