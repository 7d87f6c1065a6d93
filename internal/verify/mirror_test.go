package verify

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// mirrorRegistry is an in-memory registry on loopback that records the
// request paths it served.
type mirrorRegistry struct {
	srv   *httptest.Server
	mu    sync.Mutex
	paths []string
}

func newMirrorRegistry(t *testing.T) *mirrorRegistry {
	m := &mirrorRegistry{}
	h := ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.UserAgent() == "airlock-verify" {
			m.mu.Lock()
			m.paths = append(m.paths, r.Method+" "+r.URL.RequestURI())
			m.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *mirrorRegistry) host() string { return strings.TrimPrefix(m.srv.URL, "http://") }

// push stores a random image (or index) under repo:tag.
func (m *mirrorRegistry) push(t *testing.T, repo string, index bool) {
	t.Helper()
	ref, err := name.ParseReference(m.host()+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if index {
		idx, err := random.Index(256, 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteIndex(ref, idx); err != nil {
			t.Fatal(err)
		}
		return
	}
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
}

func TestRegistryImageThroughMirror(t *testing.T) {
	reg := newMirrorRegistry(t)
	reg.push(t, "aks-managed-repository/oss/kubernetes/pause:3.6", false)
	reg.push(t, "aks-managed-repository/oss/kubernetes/multi:1.0", true)
	pinned := `server = "https://mcr.microsoft.com"

[host."http://` + reg.host() + `/v2/aks-managed-repository"]
  capabilities = ["pull", "resolve"]
  override_path = true
`
	tests := []struct {
		name     string
		hosts    string // "" = no hosts.toml
		image    string
		want     Outcome
		evidence string
	}{
		{"pinned mirror", pinned, "mcr.microsoft.com/oss/kubernetes/pause:3.6", Reachable, "falls back to it whenever the mirror fails"},
		{"server and host are the mirror (airlock node)", `server = "http://` + reg.host() + `/v2/aks-managed-repository"
capabilities = ["pull", "resolve"]
override_path = true

[host."http://` + reg.host() + `/v2/aks-managed-repository"]
  capabilities = ["pull", "resolve"]
  override_path = true
`, "mcr.microsoft.com/oss/kubernetes/pause:3.6", Reachable, "config sha256:"},
		{"server alone is the mirror", `server = "http://` + reg.host() + `/v2/aks-managed-repository"
override_path = true
`, "mcr.microsoft.com/oss/kubernetes/pause:3.6", Reachable, "from http://" + reg.host() + "/v2/aks-managed-repository"},
		{"index", pinned, "mcr.microsoft.com/oss/kubernetes/multi:1.0", Reachable, "from http://" + reg.host()},
		{"no hosts.toml", "", "mcr.microsoft.com/oss/kubernetes/pause:3.6", Failed, "artifactSource Direct"},
		{"server only", `server = "https://mcr.microsoft.com"` + "\n", "mcr.microsoft.com/oss/kubernetes/pause:3.6", Failed, "names no mirror with pull and resolve"},
		{"mirror lacks the image", pinned, "mcr.microsoft.com/oss/kubernetes/missing:1", Failed, "HTTP 404"},
		{"mirror without override_path misses the prefix", `server = "https://mcr.microsoft.com"
[host."http://` + reg.host() + `"]
  capabilities = ["pull", "resolve"]
`, "mcr.microsoft.com/oss/kubernetes/pause:3.6", Failed, "/v2/oss/kubernetes/pause/manifests/3.6"},
		{"push-only host is not a mirror", `[host."http://` + reg.host() + `/v2/aks-managed-repository"]
  capabilities = ["push"]
  override_path = true
`, "mcr.microsoft.com/oss/kubernetes/pause:3.6", Failed, "names no mirror with pull and resolve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			if tt.hosts != "" {
				files["etc/containerd/certs.d/mcr.microsoft.com/hosts.toml"] = tt.hosts
			}
			root := writeRoot(t, files)
			rep, err := run(context.Background(), Targets{RegistryImage: tt.image}, Options{Root: root, Timeout: testTimeout}, fixedPorts{udp: 1, http: 1})
			if err != nil {
				t.Fatal(err)
			}
			checkRow(t, rep, "registry-image", tt.want, tt.evidence)
		})
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if len(reg.paths) == 0 {
		t.Errorf("the mirror saw no request from verify")
	}
	for _, p := range reg.paths {
		if !strings.Contains(p, "ns=mcr.microsoft.com") {
			t.Errorf("mirror request %q lacks ?ns=mcr.microsoft.com", p)
		}
	}
}

func TestRegistryImageTLSMirrorWithCA(t *testing.T) {
	cert := testCert(t, "mirror.test")
	h := ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))
	addr := tlsServer(t, cert, h)
	// Push over TLS trusting the test certificate.
	tr := &http.Transport{TLSClientConfig: tlsTrust(cert)}
	ref, _ := name.ParseReference(addr + "/aks/pause:3.6")
	img, _ := random.Image(128, 1)
	if err := remote.Write(ref, img, remote.WithTransport(tr)); err != nil {
		t.Fatal(err)
	}
	res := dnsServer(t, map[string]string{"mirror.test.": "127.0.0.1"}, 3)
	port := addr[strings.LastIndex(addr, ":"):]
	root := writeRoot(t, map[string]string{
		"etc/containerd/certs.d/mcr.microsoft.com/hosts.toml": `server = "https://mcr.microsoft.com"
[host."https://mirror.test` + port + `/v2/aks"]
  capabilities = ["pull", "resolve"]
  override_path = true
  ca = "/etc/airlock/ca.crt"
`,
		"etc/airlock/ca.crt": string(certPEM(cert)),
	})
	rep, err := run(context.Background(), Targets{RegistryImage: "mcr.microsoft.com/pause:3.6"}, Options{Root: root, NodeDNS: []string{res.String()}, Timeout: testTimeout}, fixedPorts{udp: 1, http: 1})
	if err != nil {
		t.Fatal(err)
	}
	checkRow(t, rep, "registry-image", Reachable, "from https://mirror.test"+port+"/v2/aks")
}

func TestCertsDirFromContainerdConfig(t *testing.T) {
	root := writeRoot(t, map[string]string{"etc/containerd/config.toml": "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/mirrors\"\n"})
	if got, want := certsDir(root, ""), root+"/etc/containerd/mirrors"; got != want {
		t.Errorf("certsDir = %q, want %q", got, want)
	}
	if got, want := certsDir(t.TempDir(), ""), "/etc/containerd/certs.d"; !strings.HasSuffix(got, want) {
		t.Errorf("certsDir without a config = %q, want it to end in %q", got, want)
	}
}

func TestParseImageRef(t *testing.T) {
	dg := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		in      string
		want    imageRef
		wantErr bool
	}{
		{in: "mcr.microsoft.com/oss/kubernetes/pause:3.6", want: imageRef{"mcr.microsoft.com", "oss/kubernetes/pause", "3.6"}},
		{in: "alpine", want: imageRef{"docker.io", "library/alpine", "latest"}},
		{in: "localhost:5000/a/b@" + dg, want: imageRef{"localhost:5000", "a/b", dg}},
		{in: "r.example/a:1@" + dg, want: imageRef{"r.example", "a", dg}},
		{in: "user/app:2", want: imageRef{"docker.io", "user/app", "2"}},
		{in: "", wantErr: true},
		{in: "r.example/a@sha256:xyz", wantErr: true},
		{in: "r.example/", wantErr: true},
		{in: "r.example/A:1", wantErr: true},
		{in: "r.example/a:", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseImageRef(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseImageRef(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && got != tt.want {
			t.Errorf("parseImageRef(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseHostsTOML(t *testing.T) {
	in := `# written by airlock node
server = "https://mcr.microsoft.com"

[host."https://10.42.2.4:5000/v2/aks-managed-repository"] # the airlock registry
  capabilities = [
    "pull",   # fetch
    "resolve",
  ]
  override_path = true
  ca = ["/etc/airlock/ca.crt", 'rel.pem']
  skip_verify = false
  dial_timeout = "3s"

[host."https://10.42.2.4:5000/v2/aks-managed-repository".header]
  x-airlock = "node#1"

[host."http://backup:5000"]
`
	got, err := parseHostsTOML([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := hostsFile{
		Server: hostEntry{URL: "https://mcr.microsoft.com"},
		Hosts: []hostEntry{
			{URL: "https://10.42.2.4:5000/v2/aks-managed-repository", Capabilities: []string{"pull", "resolve"}, OverridePath: true,
				CA: []string{"/etc/airlock/ca.crt", "rel.pem"}, Header: map[string][]string{"x-airlock": {"node#1"}}},
			{URL: "http://backup:5000"},
		},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseHostsTOML mismatch (-want +got):\n%s", d)
	}
	for _, bad := range []string{"server = ", `server = "x`, "[host.\"a\"", "capabilities", `[host."a"]` + "\ncapabilities = \"pull\"", "[[host]]", `x = ["a" "b"]`} {
		if _, err := parseHostsTOML([]byte(bad)); err == nil {
			t.Errorf("parseHostsTOML(%q) = nil error, want an error", bad)
		}
	}
}

func TestMirrorBase(t *testing.T) {
	tests := []struct {
		h    hostEntry
		want string
	}{
		{hostEntry{URL: "https://r:5000"}, "https://r:5000/v2"},
		{hostEntry{URL: "r:5000"}, "https://r:5000/v2"},
		{hostEntry{URL: "http://r/mirror"}, "http://r/mirror/v2"},
		{hostEntry{URL: "http://r/v2/aks", OverridePath: true}, "http://r/v2/aks"},
		{hostEntry{URL: "http://r/v2/"}, "http://r/v2"},
	}
	for _, tt := range tests {
		u, err := mirrorBase(tt.h)
		if err != nil || u.String() != tt.want {
			t.Errorf("mirrorBase(%+v) = %v, %v; want %s", tt.h, u, err, tt.want)
		}
	}
	if _, err := mirrorBase(hostEntry{URL: "ftp://r"}); err == nil {
		t.Errorf("mirrorBase(ftp://r) = nil error, want an error")
	}
}

func TestFindResolver(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		nodeDNS []string
		all     int // servers found
		want    string
		source  string
	}{
		{"resolv.conf", map[string]string{"etc/resolv.conf": "search x\nnameserver 10.42.2.4\nnameserver 10.0.0.1\n"}, []string{"10.9.9.9:53"}, 2, "10.42.2.4:53", "nameserver in"},
		{"stub with airlock drop-in", map[string]string{
			"etc/resolv.conf":                          "nameserver 127.0.0.53\n",
			"etc/systemd/resolved.conf.d/airlock.conf": "[Resolve]\nDNS=10.42.2.4:5353#airlock\nDomains=~.\n",
		}, nil, 1, "10.42.2.4:5353", "DNS= in"},
		{"drop-in only", map[string]string{"etc/systemd/resolved.conf.d/airlock.conf": "[Resolve]\nDNS=10.42.2.4 10.42.2.5\n"}, nil, 2, "10.42.2.4:53", "DNS= in"},
		{"node.dns fallback", nil, []string{"10.42.2.4:53"}, 1, "10.42.2.4:53", "node.dns"},
		{"node.dns replicas", nil, []string{"10.42.2.4:53", "10.42.2.5:53", "x"}, 2, "10.42.2.4:53", "node.dns"},
		{"nothing", nil, nil, 0, "invalid AddrPort", "node.dns is unset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := findResolver(writeRoot(t, tt.files), tt.nodeDNS)
			if r.server.String() != tt.want || !strings.Contains(r.source, tt.source) || len(r.all) != tt.all {
				t.Errorf("findResolver = %v (%s, all %v), want %s from %q, %d in all", r.server, r.source, r.all, tt.want, tt.source, tt.all)
			}
		})
	}
	if got := parseResolvedDNS([]byte("DNS=[fdaa::1]:53 10.0.0.1%eth0")); len(got) != 2 || got[0] != netip.MustParseAddrPort("[fdaa::1]:53") || got[1] != netip.MustParseAddrPort("10.0.0.1:53") {
		t.Errorf("parseResolvedDNS = %v, want [fdaa::1]:53 and 10.0.0.1:53", got)
	}
}
