package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testSandbox = "mcr.microsoft.com/oss/kubernetes/pause:3.6"

// TestEditContainerdConfigGolden: each config shape (containerd 1.x's
// version 2, 2.x's version 3 with its single-quoted headers, a colon
// separated config_path, a sandbox image to change) gives the config in
// testdata/containerd-<name>.golden: the edited file, then its notes.
func TestEditContainerdConfigGolden(t *testing.T) {
	tests := []struct {
		name, in string
		exists   bool
		certsDir string
	}{
		{name: "absent", certsDir: DefaultCertsDir},
		{name: "v2-empty-section", exists: true, certsDir: DefaultCertsDir, in: `version = 2
# site settings
[plugins."io.containerd.grpc.v1.cri"]
  enable_selinux = false # keep

[plugins."io.containerd.grpc.v1.cri".registry] # hosts
`},
		{name: "v2-sandbox-changed", exists: true, certsDir: DefaultCertsDir, in: `version = 2
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.6" # from kubeadm
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = ""
`},
		{name: "v2-colon-path", exists: true, certsDir: "/etc/containerd/certs.d", in: `version = 2
[plugins.'io.containerd.grpc.v1.cri'.registry]
  config_path = '/etc/containerd/certs.d:/etc/docker/certs.d' # docker compat
`},
		{name: "v3-default", exists: true, certsDir: DefaultCertsDir, in: containerd2Default},
		{name: "v3-other-dir", exists: true, certsDir: "/srv/hosts", in: `version = 3
[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = "/srv/hosts"
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = 'mcr.microsoft.com/oss/kubernetes/pause:3.6'
`},
		{name: "v3-no-sections", exists: true, certsDir: DefaultCertsDir, in: "version = 3\nroot = \"/var/lib/containerd\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := editContainerdConfig(tt.in, tt.exists, testSandbox)
			if err != nil {
				t.Fatal(err)
			}
			if e.certsDir != tt.certsDir {
				t.Errorf("certsDir = %q, want %q", e.certsDir, tt.certsDir)
			}
			if _, err := decodeTOML(e.content); err != nil {
				t.Errorf("the result is not valid TOML: %v\n%s", err, e.content)
			}
			golden(t, "containerd-"+tt.name, e.content+"# ---- notes\n# "+strings.Join(e.notes, "\n# ")+"\n")
			again, err := editContainerdConfig(e.content, true, testSandbox)
			if err != nil || again.changed {
				t.Errorf("editing the result again = changed %v, %v; want no change", again.changed, err)
			}
		})
	}
}

// containerd2Default is the CRI part of `containerd config default` of
// containerd 2.x: single-quoted keys, config_path ” (containerd then
// uses /etc/containerd/certs.d:/etc/docker/certs.d).
const containerd2Default = `version = 3
root = '/var/lib/containerd'
state = '/run/containerd'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    disable_snapshot_annotations = true
    discard_unpacked_layers = false
    max_concurrent_downloads = 3
    image_pull_progress_timeout = '5m0s'
    image_pull_with_sync_fs = false
    stats_collect_period = 10
    use_local_image_pull = false

    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'registry.k8s.io/pause:3.10'

    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = ''

    [plugins.'io.containerd.cri.v1.images'.image_decryption]
      key_model = 'node'
`

func TestEditContainerdConfigUnchanged(t *testing.T) {
	in := "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"" + testSandbox + "\"\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"
	e, err := editContainerdConfig(in, true, testSandbox)
	if err != nil || e.changed || e.content != in {
		t.Fatalf("edit of a pinned config = changed %v, %v:\n%s", e.changed, err, e.content)
	}
	if len(e.notes) != 0 {
		t.Errorf("notes = %q, want none", e.notes)
	}
}

func TestEditContainerdConfigRefuses(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"version 1", "[plugins.cri]\n", []string{"version = 2"}},
		{"version 4", "version = 4\n", []string{"newer"}},
		{"not toml", "version = 2\n[a\n", []string{"not valid TOML", "line 2"}},
		{"v2 mirrors", `version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors]
    [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
      endpoint = ["https://registry-1.docker.io"]
`, []string{"mirrors (docker.io)", "containerd#12612", `remove every [plugins."io.containerd.grpc.v1.cri".registry.mirrors...]`}},
		{"v2 mirrors without config_path", `version = 2
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
  endpoint = ["https://mirror.example"]
`, []string{"mirrors (docker.io)"}},
		{"v3 mirrors", `version = 3
[plugins.'io.containerd.cri.v1.images'.registry.mirrors.'quay.io']
  endpoint = ['https://quay.io']
`, []string{`[plugins."io.containerd.cri.v1.images".registry.mirrors...]`}},
		{"configs tls", `version = 2
[plugins."io.containerd.grpc.v1.cri".registry.configs."r.example:5000".tls]
  insecure_skip_verify = true
`, []string{"configs.<host>.tls (r.example:5000)"}},
		{"dotted key", `version = 2
[plugins."io.containerd.grpc.v1.cri"]
  registry.config_path = ""
`, []string{"form apply does not edit", "config_path"}},
		{"inline table", `version = 3
[plugins.'io.containerd.cri.v1.images']
  pinned_images = { sandbox = "registry.k8s.io/pause:3.10" }
`, []string{"form apply does not edit"}},
		{"relative path", `version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "certs.d"
`, []string{"not an absolute path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := editContainerdConfig(tt.in, true, testSandbox)
			if err == nil {
				t.Fatalf("edit = nil error, want one containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to contain %q", err, w)
				}
			}
		})
	}
	// configs with only auth is kept (containerd loads it).
	if _, err := editContainerdConfig("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r.example\".auth]\n  username = \"u\"\n", true, testSandbox); err != nil {
		t.Errorf("configs.auth refused: %v", err)
	}
}

func TestDefaultHostsTOMLGolden(t *testing.T) {
	golden(t, "hosts-default", DefaultHostsTOML(MirrorEndpoint{Registries: []string{"10.42.2.4:5000", "10.42.2.5:5000"}, TLS: true, CAFile: "/etc/airlock/registry-ca.pem"}))
}

func TestCacheRuleCovers(t *testing.T) {
	tests := []struct {
		rule, image string
		want        bool
	}{
		{"registry.k8s.io/*", "registry.k8s.io/pause:3.10", true},
		{"mcr.microsoft.com/oss/*", "mcr.microsoft.com/oss/kubernetes/pause:3.6", true},
		{"mcr.microsoft.com/oss/*", "mcr.microsoft.com/azure/pause:3.6", false},
		{"registry.k8s.io/pause", "registry.k8s.io/pause@sha256:0000000000000000000000000000000000000000000000000000000000000000", true},
		{"registry.k8s.io/pause", "registry.k8s.io/pause2:1", false},
		{"docker.io/library/*", "busybox:1", true},
		{"quay.io/*", "registry.k8s.io/pause:3.10", false},
		{"r.example:5000/*", "r.example:5000/pause:1", true},
	}
	for _, tt := range tests {
		host, repo := splitImage(tt.image)
		if got := (CacheRule{SourceRepo: tt.rule}).covers(host, repo); got != tt.want {
			t.Errorf("rule %s covers %s (%s, %s) = %v, want %v", tt.rule, tt.image, host, repo, got, tt.want)
		}
	}
}

// TestApplyContainerdRefusals: apply names what to fix and changes
// nothing when the sandbox image has no cache rule, when config.toml sets
// registry.mirrors, or when a host_port_ directory would shadow airlock's.
func TestApplyContainerdRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(root string)
		mut   func(*Input)
		want  string
	}{
		{"sandbox without rule", nil, func(in *Input) { in.Config.SandboxImage = "ghcr.io/x/pause:1" }, "no cache rule covers ghcr.io/x/pause"},
		{"mirrors", func(root string) {
			writeUnder(t, root, "/etc/containerd/config.toml", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n  endpoint = [\"https://registry-1.docker.io\"]\n")
		}, nil, "containerd#12612"},
		{"shadowing dir", func(root string) {
			must(t, os.MkdirAll(filepath.Join(root, "etc/containerd/certs.d/r.example_5000_"), 0o755))
		}, func(in *Input) {
			in.CacheRules = append(in.CacheRules, CacheRule{SourceRepo: "r.example:5000/*", TargetRepo: "r/*"})
		}, "r.example_5000_ exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.setup != nil {
				tt.setup(root)
			}
			before := snapshot(t, root)
			mut := []func(*Input){func(in *Input) { in.Config.SandboxImage = testSandbox }}
			if tt.mut != nil {
				mut = append(mut, tt.mut)
			}
			_, err := New(root, nil, nil).Plan(testInput(mut...))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Plan = %v, want an error containing %q", err, tt.want)
			}
			if after := snapshot(t, root); len(after) != len(before) {
				t.Errorf("plan changed files: %v", after)
			}
		})
	}
}

func writeUnder(t *testing.T, root, p, content string) {
	t.Helper()
	full := filepath.Join(root, p)
	must(t, os.MkdirAll(filepath.Dir(full), 0o755))
	must(t, os.WriteFile(full, []byte(content), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzEditContainerdConfig: any input either is refused or gives valid
// TOML with the config path and sandbox image set, and editing the result
// again changes nothing.
func FuzzEditContainerdConfig(f *testing.F) {
	f.Add("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/x\"\n", true)
	f.Add("version = 3\n", true)
	f.Add("", false)
	f.Add("# c\nversion=2 # x\n[plugins.\"io.containerd.grpc.v1.cri\".registry] # \"q\n", true)
	f.Add(containerd2Default, true)
	f.Add("version = 2\n[plugins.'io.containerd.grpc.v1.cri'.registry]\n  config_path = '/a:/b' # c\n", true)
	f.Fuzz(func(t *testing.T, in string, exists bool) {
		if !exists {
			in = "" // a missing file has no content
		}
		e, err := editContainerdConfig(in, exists, testSandbox)
		if err != nil {
			return
		}
		if e.certsDir == "" || !filepath.IsAbs(e.certsDir) {
			t.Fatalf("editContainerdConfig(%q) gave certs dir %q", in, e.certsDir)
		}
		doc, err := decodeTOML(e.content)
		if err != nil {
			t.Fatalf("editContainerdConfig(%q) = invalid TOML %v:\n%s", in, err, e.content)
		}
		k := containerdKeys(e.version)
		if got, _ := lookup(doc, append(k.registry, "config_path")).(string); got != e.certsDir {
			t.Fatalf("editContainerdConfig(%q): config_path = %q, want %q:\n%s", in, got, e.certsDir, e.content)
		}
		if got, _ := lookup(doc, k.sandbox).(string); got != testSandbox {
			t.Fatalf("editContainerdConfig(%q): sandbox = %q:\n%s", in, got, e.content)
		}
		if e.changed {
			again, err := editContainerdConfig(e.content, true, testSandbox)
			if err != nil || again.changed {
				t.Fatalf("editContainerdConfig(editContainerdConfig(%q)) = changed %v err %v; first result:\n%s", in, again.changed, err, e.content)
			}
		}
	})
}

// TestApplyContainerdThenReset: apply edits containerd 2's own config in
// place (comments kept), writes the cache rule hosts files and _default,
// says containerd must restart; reset puts config.toml back byte for byte
// and removes _default.
func TestApplyContainerdThenReset(t *testing.T) {
	root := t.TempDir()
	orig := "# managed by the image build\n" + containerd2Default
	writeUnder(t, root, "/etc/containerd/config.toml", orig)
	n := New(root, newFakeNet(), nil)
	res := mustApply(t, n, testInput())
	got := snapshot(t, root)
	cfg := got["etc/containerd/config.toml"]
	for _, want := range []string{"# managed by the image build\n", `sandbox = "mcr.microsoft.com/oss/kubernetes/pause:3.6"`, `config_path = "/etc/containerd/certs.d"`, "key_model = 'node'"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config.toml after apply lacks %q:\n%s", want, cfg)
		}
	}
	def := got["etc/containerd/certs.d/_default/hosts.toml"]
	if !strings.Contains(def, `server = "http://10.42.2.4:5000"`) || !strings.Contains(def, `[host."http://10.42.2.4:5000"]`) {
		t.Errorf("_default/hosts.toml = %q, want server and host at the airlock registry", def)
	}
	if !hasNote(res.Plan.Notes, "containerd must restart") {
		t.Errorf("notes = %q, want the restart", res.Plan.Notes)
	}
	if _, err := n.Reset(t.Context()); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, root)
	if after["etc/containerd/config.toml"] != orig {
		t.Errorf("config.toml after reset =\n%s\nwant the original", after["etc/containerd/config.toml"])
	}
	for p := range after {
		if strings.HasPrefix(p, "etc/containerd/certs.d") {
			t.Errorf("%s is left after reset", p)
		}
	}
}

// TestPlanContainerdByVersion: with the binary's version known, a missing
// config is written as containerd 2's version 3, and a containerd before
// 1.6.17 (no _default) gets a note that only the packet rules hold it.
func TestPlanContainerdByVersion(t *testing.T) {
	tests := []struct {
		version     string
		wantVersion string
		wantNote    bool
	}{
		{"containerd github.com/containerd/containerd/v2 2.4.2+unknown", "version = 3\n", false},
		{"containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3", "version = 2\n", false},
		{"containerd github.com/containerd/containerd v1.6.16 31aa4358a368", "version = 2\n", true},
		{"", "version = 2\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			in := testInput()
			n := New(t.TempDir(), nil, nil)
			p := &Plan{Runtimes: []RuntimeInfo{{Runtime: RuntimeContainerd, Found: true, Version: tt.version}}}
			mirrors, err := Mirrors(in.CacheRules)
			must(t, err)
			must(t, n.planContainerd(p, in, mirrors))
			if cfg := p.files[0].content; !strings.HasPrefix(cfg, tt.wantVersion) {
				t.Errorf("config.toml =\n%s\nwant it to start %q", cfg, tt.wantVersion)
			}
			if got := hasNote(p.Notes, "does not read /etc/containerd/certs.d/_default"); got != tt.wantNote {
				t.Errorf("notes = %q, want the no-_default note: %v", p.Notes, tt.wantNote)
			}
		})
	}
}
