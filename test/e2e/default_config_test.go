//go:build e2e

package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gopkg.in/yaml.v3"

	"github.com/airlockdev/airlock/internal/testkit/porttest"
)

// TestDefaultConfigPullsThroughCache runs `airlock serve` with the embedded
// default config (`airlock config default`) changed in three keys only:
// registry.upstreams points each of the five upstream hosts at its own
// Debian docker-registry on loopback, and the two listen addresses are
// free ports (the test shares the machine). The cache rules, storage and
// anonymous pull are the default's. Each image is pulled mirror style, as
// containerd's hosts.toml does (/v2/<repo>/…?ns=<host>), then path style
// under the rule's target; both must verify, and the second pull must come
// from the cache (each blob fetched from its upstream once).
func TestDefaultConfigPullsThroughCache(t *testing.T) {
	skipUnlessAirlock(t)
	bin := needAirlock(t)
	out, err := exec.Command(bin, "config", "default").Output()
	if err != nil {
		t.Fatalf("airlock config default: %v", err)
	}
	var def map[string]any
	if err := yaml.Unmarshal(out, &def); err != nil {
		t.Fatalf("parse airlock config default: %v", err)
	}
	images := []struct {
		host, repo, tag string
		mirrorRepo      string // the name containerd sends with ?ns=host
		pathRepo        string // the cache repository (path style)
	}{
		{"docker.io", "library/nginx", "1.27", "nginx", "docker.io/library/nginx"},
		{"registry.k8s.io", "pause", "3.10", "pause", "registry.k8s.io/pause"},
		{"mcr.microsoft.com", "oss/kubernetes/pause", "3.6", "oss/kubernetes/pause", "aks-managed-repository/oss/kubernetes/pause"},
		{"ghcr.io", "fluxcd/source-controller", "v1.4.1", "fluxcd/source-controller", "ghcr.io/fluxcd/source-controller"},
		{"quay.io", "prometheus/node-exporter", "v1.8.2", "prometheus/node-exporter", "quay.io/prometheus/node-exporter"},
	}

	al := newRegistry(t, kindAirlock, regOptions{})
	al.adminAddr = porttest.FreeAddr(t)
	ups := map[string]*registry{}
	endpoints := map[string]any{}
	for _, im := range images {
		up := startUpstream(t)
		ups[im.host] = up
		endpoints[im.host] = map[string]any{"url": up.upstreamURL()}
	}
	reg, ok := def["registry"].(map[string]any)
	if !ok {
		t.Fatalf("airlock config default has no registry section:\n%s", out)
	}
	reg["upstreams"] = endpoints
	reg["listen"] = al.addr
	def["admin"].(map[string]any)["listen"] = al.adminAddr
	cfg, err := yaml.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	al.writeConfig("airlock.yaml", string(cfg))
	al.bin, al.args = bin, []string{"serve", "--config", al.configPath}
	al.start()
	t.Logf("airlock.yaml (the default with upstreams and ports overridden):\n%s", cfg)

	for i, im := range images {
		t.Run(im.host, func(t *testing.T) {
			up := ups[im.host]
			img := buildImage(t, "amd64", uint64(7100+100*i), 2, 256<<10)
			blobs := seedImage(t, up, im.repo, im.tag, img)
			want, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			seeded := up.blobGETs(t)

			mirror, err := name.ParseReference(al.addr+"/"+im.mirrorRepo+":"+im.tag, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			tr := http.RoundTripper(al.client().Transport)
			if n, err := pullAndVerify(mirror, want, remote.WithTransport(nsTransport{ns: im.host, next: tr})); err != nil || n != len(blobs) {
				t.Fatalf("mirror-style pull of %s?ns=%s: verified %d of %d blobs, %v", mirror, im.host, n, len(blobs), err)
			}
			path, err := name.ParseReference(al.addr+"/"+im.pathRepo+":"+im.tag, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := pullAndVerify(path, want, remote.WithTransport(tr)); err != nil || n != len(blobs) {
				t.Fatalf("path-style pull of %s: verified %d of %d blobs, %v", path, n, len(blobs), err)
			}

			got := up.waitBlobGETs(t, blobs)
			for _, d := range blobs {
				if n := got[d] - seeded[d]; n != 1 {
					t.Errorf("upstream %s: GET /v2/%s/blobs/%s %d times for two pulls, want 1 (the second from the cache)", im.host, im.repo, d, n)
				}
			}
			var manifestGET bool
			for _, l := range up.accessLog(t) {
				if l.method == http.MethodGet && strings.HasPrefix(l.uri, "/v2/"+im.repo+"/manifests/") && l.status == http.StatusOK {
					manifestGET = true
				}
			}
			if !manifestGET {
				t.Errorf("upstream %s never served a manifest of %s", im.host, im.repo)
			}
			// Nothing crosses between hosts: no other upstream saw this repository.
			for h, o := range ups {
				if h == im.host {
					continue
				}
				for _, l := range o.accessLog(t) {
					if strings.HasPrefix(l.uri, "/v2/"+im.repo+"/") {
						t.Errorf("upstream %s was asked for %s %s, which belongs to %s", h, l.method, l.uri, im.host)
					}
				}
			}
		})
	}

	// The content is where the default puts it: ./airlock-data/registry,
	// relative to the config file's directory.
	if _, err := os.Stat(filepath.Join(al.dir, "airlock-data", "registry")); err != nil {
		t.Errorf("the default's storage path: %v", err)
	}

	// A host no rule names is refused, never fetched.
	resp, err := al.client().Get(al.url("/v2/library/nginx/manifests/1.27?ns=evil.example"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET …?ns=evil.example = %d, want 404 NAME_UNKNOWN", resp.StatusCode)
	}
}
