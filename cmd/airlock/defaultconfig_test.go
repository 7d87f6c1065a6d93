package main

import (
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/config"
	"github.com/airlockdev/airlock/internal/registry"
	"github.com/airlockdev/airlock/internal/upstream"
)

// fakeUpstream is an in-memory registry on loopback standing in for one
// real registry host; it records the request paths it served.
type fakeUpstream struct {
	srv   *httptest.Server
	mu    sync.Mutex
	paths []string
}

func newFakeUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	h := ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.paths = append(u.paths, r.URL.Path)
		u.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// push stores a random image at repo:tag and returns its manifest digest.
func (u *fakeUpstream) push(t *testing.T, repo, tag string) string {
	t.Helper()
	ref, err := name.ParseReference(strings.TrimPrefix(u.srv.URL, "http://")+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push %s to the fake upstream: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// served reports whether the upstream was asked for path.
func (u *fakeUpstream) served(path string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, p := range u.paths {
		if p == path {
			return true
		}
	}
	return false
}

// TestDefaultConfigCachesNodeRegistries serves the embedded default
// config's registry in process, with only registry.upstreams pointed at
// one in-memory registry per upstream host on loopback, and pulls a
// manifest of each of the five registries nodes use, path style and mirror
// style (containerd's ?ns=HOST): each must come from the right upstream
// and repository.
func TestDefaultConfigCachesNodeRegistries(t *testing.T) {
	cfg, err := config.Load("")
	if err != nil {
		t.Fatalf("config.Load(\"\") = %v", err)
	}
	const tag = "1.0"
	cases := []struct {
		host     string // the upstream registry host
		upRepo   string // repository on the upstream
		pathRepo string // the cache repository (path style)
		mirror   []struct{ repo, ns string }
	}{
		{"docker.io", "library/nginx", "docker.io/library/nginx", []struct{ repo, ns string }{
			{"library/nginx", "docker.io"}, {"nginx", "docker.io"}, {"library/nginx", "registry-1.docker.io"}, {"library/nginx", "index.docker.io"}}},
		{"mcr.microsoft.com", "oss/kubernetes/pause", "aks-managed-repository/oss/kubernetes/pause", []struct{ repo, ns string }{
			{"oss/kubernetes/pause", "mcr.microsoft.com"}}},
		{"ghcr.io", "x/y", "ghcr.io/x/y", []struct{ repo, ns string }{{"x/y", "ghcr.io"}}},
		{"registry.k8s.io", "pause", "registry.k8s.io/pause", []struct{ repo, ns string }{{"pause", "registry.k8s.io"}}},
		{"quay.io", "a/b", "quay.io/a/b", []struct{ repo, ns string }{{"a/b", "quay.io"}}},
	}
	ups := map[string]*fakeUpstream{}
	want := map[string]string{} // host → manifest digest
	eps := map[string]upstream.Endpoint{}
	for _, c := range cases {
		u := newFakeUpstream(t)
		ups[c.host] = u
		want[c.host] = u.push(t, c.upRepo, tag)
		eps[c.host] = upstream.Endpoint{URL: u.srv.URL}
	}
	cfg.Registry.Cache.Upstreams = eps // the only change to the default

	reg := prometheus.NewRegistry()
	lg := slog.New(slog.DiscardHandler)
	bs, err := blobstore.Open(t.TempDir(), blobstore.Options{Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	cw, err := newClusterWatch(cfg, nil, lg, reg)
	if err != nil {
		t.Fatal(err)
	}
	store, resolver, _, _, err := registryStore(&cfg.Registry.Cache, bs, cw, lg, reg, nil)
	if err != nil {
		t.Fatalf("registryStore(default) = %v", err)
	}
	if resolver == nil {
		t.Fatal("the default config has no cache: registryStore returned no resolver")
	}
	srv, err := registry.New(&cfg.Registry.Config, registry.Deps{Store: store, Resolver: resolver, Logger: lg, Metrics: registry.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	airlock := httptest.NewServer(srv.Handler())
	t.Cleanup(airlock.Close)

	get := func(t *testing.T, path string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, airlock.URL+path, nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), string(b)
	}
	for _, c := range cases {
		t.Run(c.host, func(t *testing.T) {
			upPath := "/v2/" + c.upRepo + "/manifests/" + tag
			paths := []string{"/v2/" + c.pathRepo + "/manifests/" + tag}
			for _, m := range c.mirror {
				paths = append(paths, "/v2/"+m.repo+"/manifests/"+tag+"?ns="+m.ns)
			}
			for _, p := range paths {
				status, digest, body := get(t, p)
				if status != http.StatusOK || digest != want[c.host] {
					t.Errorf("GET %s = %d digest %q %s, want 200 with %s (%s%s)", p, status, digest, body, want[c.host], c.host, upPath)
				}
			}
			if !ups[c.host].served(upPath) {
				t.Errorf("upstream %s was never asked for %s; it saw %v", c.host, upPath, ups[c.host].paths)
			}
		})
	}

	// Names no rule covers: never an open proxy, never the local store.
	for _, p := range []string{
		"/v2/library/nginx/manifests/" + tag + "?ns=evil.example",
		"/v2/library/nginx/manifests/" + tag, // mirror-style name without ?ns=
		"/v2/team/app/manifests/" + tag,
	} {
		if status, _, body := get(t, p); status != http.StatusNotFound || !strings.Contains(body, "_UNKNOWN") {
			t.Errorf("GET %s = %d %s, want 404 NAME_UNKNOWN or MANIFEST_UNKNOWN", p, status, body)
		}
	}
}
