package node

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMirrors(t *testing.T) {
	tests := []struct {
		name  string
		rules []CacheRule
		want  []Mirror
	}{
		{"aks", []CacheRule{{"mcr.microsoft.com/*", "aks-managed-repository/*"}}, []Mirror{{Upstream: "mcr.microsoft.com", Prefix: "aks-managed-repository"}}},
		{"root target is mirror style", []CacheRule{{"mcr.microsoft.com/*", "*"}}, []Mirror{{Upstream: "mcr.microsoft.com"}}},
		{"two rules for one host", []CacheRule{{"mcr.microsoft.com/oss/*", "oss/*"}, {"mcr.microsoft.com/aks/*", "aks/*"}}, []Mirror{{Upstream: "mcr.microsoft.com"}}},
		{"part of a host", []CacheRule{{"quay.io/prometheus/*", "prom/*"}}, []Mirror{{Upstream: "quay.io"}}},
		{"sorted, with port", []CacheRule{{"docker.io/*", "docker/*"}, {"127.0.0.1:5000/*", "local/*"}}, []Mirror{{Upstream: "127.0.0.1:5000", Prefix: "local"}, {Upstream: "docker.io", Prefix: "docker"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Mirrors(tt.rules)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Mirrors(%v) (-want +got):\n%s", tt.rules, diff)
			}
		})
	}
	if _, err := Mirrors([]CacheRule{{"/*", "x/*"}}); err == nil {
		t.Error("Mirrors(source without host) = nil error, want one")
	}
}

func TestEnsureConfigPath(t *testing.T) {
	want := `  config_path = "/etc/containerd/certs.d"`
	tests := []struct {
		name     string
		in       string
		exists   bool
		changed  bool
		certsDir string
		contains []string
		note     string
	}{
		{name: "absent", exists: false, changed: true, certsDir: DefaultCertsDir, contains: []string{"version = 2\n", `[plugins."io.containerd.grpc.v1.cri".registry]` + "\n" + want}, note: "restart"},
		{name: "no section", in: "version = 2\n[grpc]\n  address = \"/run/x.sock\"\n", exists: true, changed: true, certsDir: DefaultCertsDir, contains: []string{"[grpc]\n  address", `[plugins."io.containerd.grpc.v1.cri".registry]` + "\n" + want + "\n"}, note: "restart"},
		{name: "section without key", in: "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry] # mirrors\n  [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors]\n", exists: true, changed: true, certsDir: DefaultCertsDir, contains: []string{"registry] # mirrors\n" + want + "\n  [plugins"}},
		{name: "empty key", in: "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"\"\n", exists: true, changed: true, certsDir: DefaultCertsDir, contains: []string{want}},
		{name: "already set", in: "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n", exists: true, changed: false, certsDir: DefaultCertsDir},
		{name: "other dir kept", in: "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = '/etc/docker/certs.d' # site\n", exists: true, changed: false, certsDir: "/etc/docker/certs.d", note: "leaves the setting alone"},
		{name: "containerd 2", in: "version = 3\n", exists: true, changed: true, certsDir: DefaultCertsDir, contains: []string{`[plugins."io.containerd.cri.v1.images".registry]` + "\n" + want}},
		{name: "comments only", in: "# nothing yet\n", exists: true, changed: true, certsDir: DefaultCertsDir, contains: []string{"# nothing yet\nversion = 2\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ensureConfigPath(tt.in, tt.exists)
			if err != nil {
				t.Fatal(err)
			}
			if e.changed != tt.changed || e.certsDir != tt.certsDir {
				t.Errorf("ensureConfigPath(%q) = changed %v dir %q, want %v %q", tt.in, e.changed, e.certsDir, tt.changed, tt.certsDir)
			}
			if !tt.changed && e.content != tt.in {
				t.Errorf("ensureConfigPath(%q) changed the content to %q", tt.in, e.content)
			}
			for _, c := range tt.contains {
				if !strings.Contains(e.content, c) {
					t.Errorf("ensureConfigPath(%q) =\n%s\nwant it to contain %q", tt.in, e.content, c)
				}
			}
			if !strings.Contains(e.note, tt.note) {
				t.Errorf("ensureConfigPath(%q) note = %q, want %q", tt.in, e.note, tt.note)
			}
		})
	}
	if _, err := ensureConfigPath("[plugins.cri]\n", true); err == nil {
		t.Error("ensureConfigPath(version 1 config) = nil error, want one")
	}
}

func TestDetectResolver(t *testing.T) {
	tests := []struct {
		name  string
		setup func(root string)
		want  ResolverMode
	}{
		{"empty root", func(string) {}, ResolverResolvConf},
		{"plain file", func(r string) {
			os.MkdirAll(r+"/etc", 0o755)
			os.WriteFile(r+"/etc/resolv.conf", []byte("nameserver 10.0.0.2\n"), 0o644)
		}, ResolverResolvConf},
		{"stub nameserver", func(r string) {
			os.MkdirAll(r+"/etc", 0o755)
			os.WriteFile(r+"/etc/resolv.conf", []byte("nameserver 127.0.0.53\noptions edns0\n"), 0o644)
		}, ResolverResolved},
		{"symlink into resolved", func(r string) {
			os.MkdirAll(r+"/etc", 0o755)
			os.Symlink("../run/systemd/resolve/stub-resolv.conf", r+"/etc/resolv.conf")
		}, ResolverResolved},
		{"stub file, no resolv.conf", func(r string) {
			os.MkdirAll(r+"/run/systemd/resolve", 0o755)
			os.WriteFile(r+"/run/systemd/resolve/stub-resolv.conf", nil, 0o644)
		}, ResolverResolved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.setup(root)
			if got := detectResolver(root); got != tt.want {
				t.Errorf("detectResolver(%s) = %s, want %s", tt.name, got, tt.want)
			}
		})
	}
}

func TestResolverFiles(t *testing.T) {
	got := resolvedDropIn([]netip.AddrPort{netip.MustParseAddrPort("10.42.2.4:5353")})
	if !strings.Contains(got, "[Resolve]\nDNS=10.42.2.4:5353\nDomains=~.\n") {
		t.Errorf("resolvedDropIn(:5353) = %q", got)
	}
	if got := resolvedDropIn([]netip.AddrPort{netip.MustParseAddrPort("[fdaa::4]:53")}); !strings.Contains(got, "DNS=fdaa::4\n") {
		t.Errorf("resolvedDropIn([fdaa::4]:53) = %q, want DNS=fdaa::4", got)
	}
	if _, err := resolvConf([]netip.AddrPort{netip.MustParseAddrPort("10.42.2.4:5353")}, ""); err == nil || !strings.Contains(err.Error(), "port 53") {
		t.Errorf("resolvConf(:5353) error = %v, want one about port 53", err)
	}

	// Apply with resolved in use writes the drop-in and leaves resolv.conf.
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc/resolv.conf"))
	n := New(root, newFakeNet(), nil)
	res := mustApply(t, n, testInput(func(in *Input) { in.Config.DNS = Addresses{"10.42.2.4:5353"} }))
	if res.State.Resolver != ResolverResolved {
		t.Errorf("resolver = %s, want resolved", res.State.Resolver)
	}
	b, err := os.ReadFile(filepath.Join(root, ResolvedDropIn))
	if err != nil || !strings.Contains(string(b), "DNS=10.42.2.4:5353") {
		t.Errorf("drop-in = %q %v", b, err)
	}
	if l, _ := os.Readlink(filepath.Join(root, "etc/resolv.conf")); l == "" {
		t.Error("resolv.conf symlink replaced, want left alone under resolved")
	}
	if !hasNote(res.Plan.Notes, "systemctl restart systemd-resolved") {
		t.Errorf("notes = %q, want the resolved restart", res.Plan.Notes)
	}
}

func FuzzEnsureConfigPath(f *testing.F) {
	f.Add("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/x\"\n", true)
	f.Add("version = 3\n", true)
	f.Add("", false)
	f.Add("# c\nversion=2 # x\n[plugins.\"io.containerd.grpc.v1.cri\".registry] # \"q\n", true)
	f.Fuzz(func(t *testing.T, in string, exists bool) {
		if !exists {
			in = "" // a missing file has no content
		}
		e, err := ensureConfigPath(in, exists)
		if err != nil {
			return
		}
		if e.certsDir == "" {
			t.Fatalf("ensureConfigPath(%q) gave no certs dir", in)
		}
		if e.changed {
			// Applying again to the result changes nothing.
			again, err := ensureConfigPath(e.content, true)
			if err != nil || again.changed {
				t.Fatalf("ensureConfigPath(ensureConfigPath(%q)) = changed %v err %v; first result:\n%s", in, again.changed, err, e.content)
			}
		}
	})
}
