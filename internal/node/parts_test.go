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
