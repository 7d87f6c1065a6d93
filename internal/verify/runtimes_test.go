package verify

import (
	"context"
	"strings"
	"testing"
)

func TestMatchPrefix(t *testing.T) {
	for _, tc := range []struct {
		ref, prefix string
		want        int
	}{
		{"mcr.microsoft.com/oss/pause:3.6", "mcr.microsoft.com", 17},
		{"mcr.microsoft.com/oss/pause:3.6", "mcr.microsoft.com/oss", 21},
		{"mcr.microsoft.com/ossx/pause:3.6", "mcr.microsoft.com/oss", -1},
		{"quay.io/a/b@sha256:00", "quay.io/a/b", 11},
		{"quay.io/a:1", "*.io", 7},
		{"sub.quay.io/a:1", "*.quay.io", 11},
		{"quay.io/a:1", "*.quay.io", -1},
		{"evil.io.example.com/a:1", "*.io", -1},
		{"registry.company.com/a:1", "*.com", -1}, // containers/image matches the first ".com" only
		{"10.0.0.1:5000/a:1", "*.1", 8},           // an IP address matches by accident…
		{"10.1.0.1:5000/a:1", "*.1", -1},          // …or not: the first ".1" decides
		{"localhost/a:1", "localhost", 9},
		{"localhost:5000/a:1", "localhost", 9}, // containers/image: "DON'T RELY ON THE CURRENT BEHAVIOR"
	} {
		if got := matchPrefix(tc.ref, tc.prefix); got != tc.want {
			t.Errorf("matchPrefix(%q, %q) = %d, want %d", tc.ref, tc.prefix, got, tc.want)
		}
	}
}

// airlockConf is the shape of node apply's drop-in, for registry at reg.
func airlockConf(reg string, catchAll bool) string {
	s := `unqualified-search-registries = []
short-name-mode = "enforcing"

[[registry]]
prefix = "mcr.microsoft.com"
location = "` + reg + `/aks-managed-repository"
insecure = true
`
	if catchAll {
		for _, p := range []string{"localhost", "*.com", "*.io", "*.aws"} {
			s += "\n[[registry]]\nprefix = \"" + p + "\"\nlocation = \"" + reg + "/airlock-unpinned\"\ninsecure = true\n"
		}
	}
	return s
}

func TestRegistriesConfRows(t *testing.T) {
	reg := newMirrorRegistry(t)
	reg.push(t, "aks-managed-repository/oss/kubernetes/pause:3.6", false)
	const dropIn = "etc/containers/registries.conf.d/99-airlock.conf"
	const image = "mcr.microsoft.com/oss/kubernetes/pause:3.6"
	tests := []struct {
		name              string
		files             map[string]string
		pinned, imageRow  Outcome
		pinnedEv, imageEv string
	}{
		{"pinned", map[string]string{dropIn: airlockConf(reg.host(), true)}, Blocked, Reachable,
			"quay.io/airlock-verify/image:1 → " + reg.host() + "/airlock-unpinned/airlock-verify/image:1", "config sha256:"},
		{"catch-all removed", map[string]string{dropIn: airlockConf(reg.host(), false)}, Failed, Reachable,
			"quay.io/airlock-verify/image:1 has no [[registry]] entry: pulled from quay.io directly", "prefix \"mcr.microsoft.com\""},
		{"a later drop-in wins", map[string]string{dropIn: airlockConf(reg.host(), true),
			"etc/containers/registries.conf.d/zz-site.conf": "[[registry]]\nprefix = \"mcr.microsoft.com\"\nlocation = \"mcr.microsoft.com\"\n"},
			Failed, Failed, "falls back to mcr.microsoft.com", "names no airlock endpoint"},
		{"a mirror that is not airlock", map[string]string{dropIn: airlockConf(reg.host(), true) +
			"\n[[registry]]\nprefix = \"ghcr.io\"\nlocation = \"" + reg.host() + "/ghcr\"\ninsecure = true\n[[registry.mirror]]\nlocation = \"mirror.example.net\"\n"},
			Failed, Reachable, "falls back to mirror.example.net", "config sha256:"},
		{"short names searched on docker.io", map[string]string{dropIn: airlockConf(reg.host(), false),
			"etc/containers/registries.conf": "unqualified-search-registries = [\"docker.io\"]\n", "etc/containers/registries.conf.d/zz.conf": "unqualified-search-registries = [\"docker.io\"]\n"},
			Failed, Reachable, "docker.io/airlock-verify:1 has no [[registry]] entry", "config sha256:"},
		{"v1 main file", map[string]string{dropIn: airlockConf(reg.host(), true),
			"etc/containers/registries.conf": "[registries.search]\nregistries = ['docker.io']\n[registries.block]\nregistries = ['quay.io']\n"},
			Blocked, Reachable, "quay.io/airlock-verify/image:1 blocked (/etc/containers/registries.conf)", "config sha256:"},
		{"v1 drop-in", map[string]string{dropIn: airlockConf(reg.host(), true),
			"etc/containers/registries.conf.d/50-old.conf": "[registries.search]\nregistries = ['docker.io']\n"},
			Failed, Failed, "must be in the v2 format", "v2 format"},
		{"per-user file replaces the system ones", map[string]string{dropIn: airlockConf(reg.host(), true),
			"root/.config/containers/registries.conf": "unqualified-search-registries = []\n"},
			Failed, Failed, "mcr.microsoft.com/oss/kubernetes/pause:3.6 has no [[registry]] entry", "no [[registry]] entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.files["usr/bin/podman"] = ""
			root := writeRoot(t, tt.files)
			rep, err := run(context.Background(), Targets{RegistryImage: image},
				Options{Root: root, Timeout: testTimeout, Registries: []string{reg.host()}, RegistriesConf: "/" + dropIn}, fixedPorts{udp: 1, http: 1})
			if err != nil {
				t.Fatal(err)
			}
			checkRow(t, rep, "registries-conf-pinned", tt.pinned, tt.pinnedEv)
			checkRow(t, rep, "registries-conf-image", tt.imageRow, tt.imageEv)
			checkRow(t, rep, "registries-conf-unpinnable", NotTestable, "packet rules")
		})
	}
	// No podman, no CRI-O, no drop-in: no rows.
	rep, err := run(context.Background(), Targets{}, Options{Root: writeRoot(t, nil), Timeout: testTimeout}, fixedPorts{udp: 1, http: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Rows {
		if strings.HasPrefix(r.Channel, "registries-conf") || strings.HasPrefix(r.Channel, "docker") {
			t.Errorf("row %s on a node without those runtimes", r.Channel)
		}
	}
}

func TestDockerRows(t *testing.T) {
	for _, tc := range []struct {
		name, daemon string
		want         Outcome
		ev           string
	}{
		{"airlock mirror", `{"registry-mirrors": ["http://10.42.2.4:5000"], "debug": true}`, Blocked, "airlock only"},
		{"another mirror", `{"registry-mirrors": ["http://10.42.2.4:5000", "https://mirror.gcr.io"]}`, Failed, "https://mirror.gcr.io, not airlock"},
		{"no mirror", `{"debug": true}`, Failed, "registry-1.docker.io directly"},
		{"invalid", `{"registry-mirrors": [}`, Failed, "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeRoot(t, map[string]string{"usr/bin/dockerd": "", "etc/docker/daemon.json": tc.daemon})
			rep, err := run(context.Background(), Targets{}, Options{Root: root, Timeout: testTimeout, Registries: []string{"10.42.2.4:5000"}, DockerDaemonConfig: "/etc/docker/daemon.json"}, fixedPorts{udp: 1, http: 1})
			if err != nil {
				t.Fatal(err)
			}
			checkRow(t, rep, "docker-mirror", tc.want, tc.ev)
			checkRow(t, rep, "docker-unpinnable", NotTestable, "moby#18818")
		})
	}
}

// FuzzParseRegistriesConf: any file either fails to parse or resolves
// every reference without a panic, each source a rewrite of the
// reference onto its endpoint.
func FuzzParseRegistriesConf(f *testing.F) {
	for _, s := range []string{
		airlockConf("10.0.0.1:5000", true),
		"[registries.search]\nregistries = ['docker.io']\n[registries.insecure]\nregistries = ['a:1/']\n",
		"[[registry]]\nprefix = \"*.example.com\"\n",
		"[[registry]]\nlocation = \"q.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.io/x\"\npull-from-mirror = \"tag-only\"\n",
		"unqualified-search-registries = 3",
	} {
		f.Add([]byte(s), false)
	}
	refs := []string{"quay.io/a/b:1", "mcr.microsoft.com/x@sha256:00", "localhost/a:1", "q.io/r:1", "x.example.com/y:2"}
	f.Fuzz(func(t *testing.T, b []byte, dropIn bool) {
		file, err := parseRegistriesFile(b, "f.conf", dropIn)
		if err != nil {
			return
		}
		rc := registriesConf{Registries: file.Registries}
		for _, ref := range refs {
			_, srcs := rc.find(ref)
			if len(srcs) == 0 {
				t.Fatalf("%q: no source", ref)
			}
			for _, s := range srcs {
				if !strings.HasPrefix(s.ref, s.endpoint.Location) {
					t.Fatalf("%q: source %q does not start with its endpoint %q", ref, s.ref, s.endpoint.Location)
				}
			}
		}
	})
}
