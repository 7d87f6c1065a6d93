//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestCacheConcurrentColdPulls: 50 clients pull one cold multi-layer image
// through airlock at once, half path style and half mirror style (?ns=);
// each reads and verifies the manifest, config and every layer. The
// upstream's access log must show exactly one GET per blob.
func TestCacheConcurrentColdPulls(t *testing.T) {
	skipUnlessAirlock(t)
	const (
		clients = 50
		repo    = "oss/v2/kubernetes/kube-proxy"
		tag     = "v1.33.7-16"
	)
	up := startUpstream(t)
	img := buildImage(t, "amd64", 3316, 4, 4<<20)
	blobs := seedImage(t, up, repo, tag, img)
	wantManifest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	seeded := up.blobGETs(t)
	al := startCacheAirlock(t, cacheOptions{upstream: up.upstreamURL()})

	pathRef, err := name.ParseReference(al.addr+"/"+cacheTarget+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	mirrorRef, err := name.ParseReference(al.addr+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}

	release := make(chan struct{})
	errs := make([]error, clients)
	verified := make([]int, clients)
	took := make([]time.Duration, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ref, tr := pathRef, http.RoundTripper(al.client().Transport)
			if i%2 == 1 {
				ref, tr = mirrorRef, nsTransport{ns: mcrHost, next: tr}
			}
			<-release
			start := time.Now()
			verified[i], errs[i] = pullAndVerify(ref, wantManifest, remote.WithTransport(tr))
			took[i] = time.Since(start)
		}()
	}
	start := time.Now()
	close(release)
	wg.Wait()
	wall := time.Since(start)

	var slowest time.Duration
	for i := range clients {
		if errs[i] != nil {
			t.Errorf("client %d: %v", i, errs[i])
		} else if verified[i] != len(blobs) {
			t.Errorf("client %d verified %d blobs, want %d", i, verified[i], len(blobs))
		}
		slowest = max(slowest, took[i])
	}
	got := up.waitBlobGETs(t, blobs)
	var manifestReqs int
	for _, l := range up.accessLog(t) {
		if strings.Contains(l.uri, "/manifests/") {
			manifestReqs++
		}
	}
	t.Logf("%d clients pulled %s (%d blobs, %s) in %s (slowest client %s); upstream blob GETs:%s; upstream manifest requests: %d; %s",
		clients, repo, len(blobs), mib(imageSize(t, img)), wall.Round(time.Millisecond), slowest.Round(time.Millisecond),
		sortedCounts(got), manifestReqs, al.cacheMetrics(t))
	for _, d := range blobs {
		if n := got[d] - seeded[d]; n != 1 {
			t.Errorf("upstream GET /v2/%s/blobs/%s: %d times for %d concurrent clients, want exactly 1", repo, d, n, clients)
		}
	}
}

// pullAndVerify pulls ref with go-containerregistry: the manifest must be
// wantManifest; the config and every layer are read to the end and hashed.
// It returns how many blobs verified.
func pullAndVerify(ref name.Reference, wantManifest v1.Hash, opts ...remote.Option) (int, error) {
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return 0, fmt.Errorf("remote.Image(%s): %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return 0, err
	}
	if d != wantManifest {
		return 0, fmt.Errorf("manifest of %s = %s, want %s", ref, d, wantManifest)
	}
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return 0, fmt.Errorf("config: %w", err)
	}
	if got := sha256Digest(cfg); got != m.Config.Digest.String() {
		return 0, fmt.Errorf("config hashes to %s, want %s", got, m.Config.Digest)
	}
	n := 1
	layers, err := img.Layers()
	if err != nil {
		return n, err
	}
	for _, l := range layers {
		want, err := l.Digest()
		if err != nil {
			return n, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return n, fmt.Errorf("layer %s: %w", want, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return n, fmt.Errorf("layer %s: %w", want, err)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != want.String() {
			return n, fmt.Errorf("layer hashes to %s, want %s", got, want)
		}
		n++
	}
	return n, nil
}

// nsTransport adds ?ns=HOST to every repository request, as containerd
// does when it talks to a mirror.
type nsTransport struct {
	ns   string
	next http.RoundTripper
}

func (n nsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasPrefix(req.URL.Path, "/v2/") && req.URL.Path != "/v2/" {
		req = req.Clone(req.Context())
		q := req.URL.Query()
		q.Set("ns", n.ns)
		req.URL.RawQuery = q.Encode()
	}
	return n.next.RoundTrip(req)
}

// imageSize is the sum of an image's config and compressed layer sizes.
func imageSize(t testing.TB, img v1.Image) int64 {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}
