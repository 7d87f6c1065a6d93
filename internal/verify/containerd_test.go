package verify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	ctrV2 = `version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "mcr.microsoft.com/oss/kubernetes/pause:3.6"
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
`
	ctrV3 = `version = 3
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = 'mcr.microsoft.com/oss/kubernetes/pause:3.6'
[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = '/etc/containerd/certs.d'
`
	hostsMCR = `server = "http://10.42.2.4:5000/v2/aks-managed-repository"
capabilities = ["pull", "resolve"]
override_path = true
[host."http://10.42.2.4:5000/v2/aks-managed-repository"]
  capabilities = ["pull", "resolve"]
  override_path = true
`
	hostsDefault = `server = "http://10.42.2.4:5000"
capabilities = ["pull", "resolve"]
[host."http://10.42.2.4:5000"]
  capabilities = ["pull", "resolve"]
`
)

// pinnedRoot is a node whose containerd apply pinned: cfg as config.toml,
// the mcr.microsoft.com hosts file and _default; extra files on top (""
// removes one).
func pinnedRoot(t *testing.T, cfg string, extra map[string]string) string {
	files := map[string]string{
		"etc/containerd/config.toml":                          cfg,
		"etc/containerd/certs.d/mcr.microsoft.com/hosts.toml": hostsMCR,
		"etc/containerd/certs.d/_default/hosts.toml":          hostsDefault,
	}
	for k, v := range extra {
		files[k] = v
	}
	for k, v := range files {
		if v == "" {
			delete(files, k)
		}
	}
	return writeRoot(t, files)
}

func containerdRows(t *testing.T, root string, opt Options) map[string]Row {
	t.Helper()
	opt.Root, opt.Timeout = root, testTimeout
	if opt.Registries == nil {
		opt.Registries = []string{"10.42.2.4:5000"}
	}
	rep, err := run(context.Background(), Targets{}, opt, fixedPorts{udp: 1, http: 1})
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]Row{}
	for _, r := range rep.Rows {
		if strings.HasPrefix(r.Channel, "containerd-") {
			rows[r.Channel] = r
		}
	}
	return rows
}

func TestContainerdRowsPass(t *testing.T) {
	for name, cfg := range map[string]string{"version 2": ctrV2, "version 3": ctrV3} {
		t.Run(name, func(t *testing.T) {
			rows := containerdRows(t, pinnedRoot(t, cfg, nil), Options{SandboxImage: "mcr.microsoft.com/oss/kubernetes/pause:3.6", ContainerdVersion: "containerd github.com/containerd/containerd 1.6.20~ds1"})
			if len(rows) != 3 {
				t.Fatalf("containerd rows = %v, want 3", rows)
			}
			for ch, r := range rows {
				if r.Got != Reachable || r.Expected != Reachable {
					t.Errorf("%s = %s (%s), want reachable", ch, r.Got, r.Evidence)
				}
			}
		})
	}
}

func TestContainerdRowsFindings(t *testing.T) {
	tests := []struct {
		name    string
		cfg     string
		extra   map[string]string
		opt     Options
		channel string
		want    []string
	}{
		{name: "no _default", cfg: ctrV2, extra: map[string]string{"etc/containerd/certs.d/_default/hosts.toml": ""},
			channel: "containerd-default", want: []string{"certs.d/_default/hosts.toml", "fallback"}},
		{name: "_default to the upstream", cfg: ctrV3, extra: map[string]string{"etc/containerd/certs.d/_default/hosts.toml": "server = \"https://registry-1.docker.io\"\n"},
			channel: "containerd-default", want: []string{"names https://registry-1.docker.io", "not the airlock registry"}},
		{name: "_default without server", cfg: ctrV2, extra: map[string]string{"etc/containerd/certs.d/_default/hosts.toml": "[host.\"http://10.42.2.4:5000\"]\n"},
			channel: "containerd-default", want: []string{"no server"}},
		{name: "other host dir", cfg: ctrV2, extra: map[string]string{"etc/containerd/certs.d/ghcr.io/hosts.toml": "server = \"https://ghcr.io\"\n"},
			channel: "containerd-default", want: []string{"ghcr.io/hosts.toml: names https://ghcr.io"}},
		{name: "certs-only dir", cfg: ctrV2, extra: map[string]string{"etc/containerd/certs.d/quay.io/ca.crt": "x"},
			channel: "containerd-default", want: []string{"quay.io has no hosts.toml"}},
		{name: "containerd 1.6.16", cfg: ctrV2, opt: Options{ContainerdVersion: "containerd github.com/containerd/containerd v1.6.16 31aa4358a36870b21a992d3ad2bef29e1d693bec"},
			channel: "containerd-default", want: []string{"does not read _default", "nftables"}},
		{name: "mirrors", cfg: ctrV2 + "[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n  endpoint = [\"https://registry-1.docker.io\"]\n",
			channel: "containerd-config", want: []string{"mirrors] sets docker.io", "containerd#12612"}},
		{name: "colon path", cfg: strings.Replace(ctrV3, "'/etc/containerd/certs.d'", "'/etc/containerd/certs.d:/etc/docker/certs.d'", 1),
			channel: "containerd-config", want: []string{"several directories", "containerd#12636"}},
		{name: "no config_path", cfg: "version = 2\n", channel: "containerd-config", want: []string{"config_path is not set"}},
		{name: "version 1", cfg: "[plugins.cri]\n", channel: "containerd-config", want: []string{"version 0"}},
		{name: "sandbox unpinned", cfg: "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n",
			channel: "containerd-sandbox", want: []string{"sandbox_image is not set", "kubeadm#2020"}},
		{name: "sandbox other image", cfg: ctrV2, opt: Options{SandboxImage: "registry.k8s.io/pause:3.10"},
			channel: "containerd-sandbox", want: []string{"node.sandboxImage is registry.k8s.io/pause:3.10"}},
		{name: "sandbox registry without rule", cfg: strings.Replace(ctrV3, "mcr.microsoft.com/oss/kubernetes", "registry.k8s.io", 1),
			channel: "containerd-sandbox", want: []string{"registry.k8s.io/hosts.toml", "airlock, which refuses it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := containerdRows(t, pinnedRoot(t, tt.cfg, tt.extra), tt.opt)
			r, ok := rows[tt.channel]
			if !ok {
				t.Fatalf("no %s row in %v", tt.channel, rows)
			}
			if r.Got != Failed {
				t.Errorf("%s = %s (%s), want FAILED", tt.channel, r.Got, r.Evidence)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.Evidence, w) {
					t.Errorf("%s evidence %q, want it to contain %q", tt.channel, r.Evidence, w)
				}
			}
		})
	}
}

func TestContainerdRowsOnlyWithContainerd(t *testing.T) {
	if rows := containerdRows(t, t.TempDir(), Options{}); len(rows) != 0 {
		t.Errorf("rows without containerd = %v, want none", rows)
	}
	// The binary alone is enough: no config is a finding.
	root := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/bin/containerd"), nil, 0o755))
	rows := containerdRows(t, root, Options{})
	if r := rows["containerd-config"]; r.Got != Failed || !strings.Contains(r.Evidence, "config.toml") {
		t.Errorf("containerd-config with no config = %s (%s), want FAILED naming config.toml", r.Got, r.Evidence)
	}
}

func TestReadsDefaultHosts(t *testing.T) {
	for v, want := range map[string]bool{
		"containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3":      true,
		"containerd github.com/containerd/containerd v1.6.16 31aa4358a36870b21a992d3ad2be": false,
		"containerd github.com/containerd/containerd v1.7.0 1fbd70374134b891f97ce19c70b6e": true,
		"containerd github.com/containerd/containerd/v2 2.4.2+unknown":                     true,
		"containerd containerd.io 1.5.11 3df54a852345ae127d1fa3092b95168e4a88e2f8":         false,
	} {
		got, known := readsDefaultHosts(v)
		if !known || got != want {
			t.Errorf("readsDefaultHosts(%q) = %v (known %v), want %v", v, got, known, want)
		}
	}
	if _, known := readsDefaultHosts("containerd"); known {
		t.Error("readsDefaultHosts without a version is known")
	}
}
