//go:build e2e

package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestCacheUpstreamDown: with the upstream docker-registry killed, a warm
// image still pulls (its tag served stale, also after an airlock restart
// with no upstream), and a cold one fails fast — within upstreamTimeout
// plus a little — with a 503 UNAVAILABLE OCI error that says the upstream
// is unreachable and does not leak its address. With the upstream back on
// the same storage, the cold image pulls.
func TestCacheUpstreamDown(t *testing.T) {
	skipUnlessAirlock(t)
	const (
		timeout  = 3 * time.Second
		tagTTL   = time.Second
		warmRepo = "oss/v2/kubernetes/coredns"
		warmTag  = "v1.13.1-20"
		coldRepo = "oss/v2/kubernetes/metrics-server"
		coldTag  = "v0.8.0-21"
	)
	up := startUpstream(t)
	warm := buildImage(t, "amd64", 1313, 3, 1<<20)
	cold := buildImage(t, "amd64", 800, 3, 1<<20)
	seedImage(t, up, warmRepo, warmTag, warm)
	coldBlobs := seedImage(t, up, coldRepo, coldTag, cold)
	warmDigest, _ := warm.Digest()
	coldDigest, _ := cold.Digest()
	al := startCacheAirlock(t, cacheOptions{upstream: up.upstreamURL(), upstreamTimeout: timeout, tagTTL: tagTTL})
	c := newOCIClient(al)
	ref := func(repo, tag string) name.Reference {
		r, err := name.ParseReference(al.addr+"/"+cacheTarget+"/"+repo+":"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	pull := func(repo, tag string, want v1.Hash) (int, time.Duration, error) {
		start := time.Now()
		n, err := pullAndVerify(ref(repo, tag), want, remote.WithTransport(al.client().Transport))
		return n, time.Since(start), err
	}

	n, took, err := pull(warmRepo, warmTag, warmDigest)
	if err != nil {
		t.Fatalf("warming pull of %s: %v", warmRepo, err)
	}
	t.Logf("warm-up pull of %s with the upstream up: %d blobs in %s", warmRepo, n, took.Round(time.Millisecond))
	_, tookUp, err := pull(warmRepo, warmTag, warmDigest)
	if err != nil {
		t.Fatalf("warm pull with the upstream up: %v", err)
	}

	up.kill() // SIGKILL by the PID the harness recorded
	t.Logf("upstream docker-registry (pid %d) killed", up.proc.pid())
	time.Sleep(tagTTL + 100*time.Millisecond) // the cached tag is now due for revalidation
	stale := al.metric(t, "airlock_cache_stale_serves_total")

	t.Run("warm image pulls", func(t *testing.T) {
		n, took, err := pull(warmRepo, warmTag, warmDigest)
		if err != nil {
			t.Fatalf("warm pull with the upstream down: %v", err)
		}
		t.Logf("warm pull of %s: %d blobs verified in %s with the upstream down (%s with it up)", warmRepo, n, took.Round(time.Millisecond), tookUp.Round(time.Millisecond))
		if got := al.metric(t, "airlock_cache_stale_serves_total") - stale; got < 1 {
			t.Errorf("airlock_cache_stale_serves_total rose by %g, want ≥ 1 (the tag was past tagTTL)", got)
		}
		if !al.airlockLogContains(t, "serving a cached tag that could not be revalidated") {
			t.Errorf("airlock logged no warning for the stale tag")
		}
	})

	t.Run("cold image fails fast with an OCI error", func(t *testing.T) {
		for _, target := range []string{
			"/v2/" + cacheTarget + "/" + coldRepo + "/manifests/" + coldTag,
			"/v2/" + coldRepo + "/manifests/" + coldTag + "?ns=" + mcrHost,
			"/v2/" + cacheTarget + "/" + coldRepo + "/blobs/" + coldBlobs[1],
			"/v2/" + coldRepo + "/blobs/" + coldBlobs[2] + "?ns=" + mcrHost,
		} {
			start := time.Now()
			resp := c.do(t, http.MethodGet, target, http.Header{"Accept": {mtManifest}}, nil)
			took := time.Since(start)
			t.Logf("GET %s with the upstream down: %d in %s: %s", target, resp.status, took.Round(time.Millisecond), strings.TrimSpace(string(resp.body)))
			checkUnavailable(t, "GET "+target, resp, up.addr)
			if took > timeout+2*time.Second {
				t.Errorf("GET %s took %s with the upstream down, want ≤ upstreamTimeout (%s) + 2s", target, took, timeout)
			}
		}
	})

	t.Run("airlock starts with no upstream and serves the warm image", func(t *testing.T) {
		start := time.Now()
		al.restart()
		t.Logf("airlock restarted and ready in %s with the upstream down", time.Since(start).Round(time.Millisecond))
		n, took, err := pull(warmRepo, warmTag, warmDigest)
		if err != nil {
			t.Fatalf("warm pull after the restart, upstream down: %v", err)
		}
		t.Logf("warm pull after the restart: %d blobs in %s", n, took.Round(time.Millisecond))
	})

	t.Run("upstream back: the cold image pulls", func(t *testing.T) {
		up.start() // same storage, same address
		n, took, err := pull(coldRepo, coldTag, coldDigest)
		if err != nil {
			t.Fatalf("cold pull with the upstream back: %v", err)
		}
		t.Logf("cold pull of %s with the upstream back: %d blobs verified in %s; %s", coldRepo, n, took.Round(time.Millisecond), al.cacheMetrics(t))
	})
}

// checkUnavailable reports unless resp is a 503 OCI error UNAVAILABLE
// saying the upstream is unreachable, without the upstream's address.
func checkUnavailable(t testing.TB, what string, resp *response, upstreamAddr string) {
	t.Helper()
	checkOCIError(t, what, resp, []int{http.StatusServiceUnavailable}, []string{"UNAVAILABLE"})
	var e ociErrorBody
	if json.Unmarshal(resp.body, &e) == nil && len(e.Errors) > 0 && !strings.Contains(e.Errors[0].Message, "unreachable") {
		t.Errorf("%s: message %q does not say the upstream is unreachable", what, e.Errors[0].Message)
	}
	_, port, _ := net.SplitHostPort(upstreamAddr)
	if strings.Contains(string(resp.body), upstreamAddr) || strings.Contains(string(resp.body), ":"+port) {
		t.Errorf("%s: body %q names the upstream's address %s", what, resp.body, upstreamAddr)
	}
}
