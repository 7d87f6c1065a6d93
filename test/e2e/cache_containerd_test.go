//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCacheContainerd: containerd 1.6 pulls mcr.microsoft.com images and
// artifacts through airlock's cache, with hosts.toml pinned to airlock
// (server and host entry, IP literals only), both ways in: mirror style
// (?ns=mcr.microsoft.com) and path style (override_path under
// aks-managed-repository), then over TLS with the test CA named in
// hosts.toml. Debian's docker-registry is the upstream; its access log must
// show exactly one GET per blob across all of it.
func TestCacheContainerd(t *testing.T) {
	skipUnlessAirlock(t)
	up := startUpstream(t)
	pause := buildMultiArch(t, 3600, 3, 1<<20)
	seedIndex(t, up, pauseRepo, pauseTag, pause.index)
	art := buildKubeNodeArtifact(t, 13114, 2<<20)
	seedArtifact(t, up, kubeNodeRep, kubeNodeTag, art)
	seeded := up.blobGETs(t)

	al := startCacheAirlock(t, cacheOptions{upstream: up.upstreamURL()})
	cd := startContainerd(t)
	pauseRef := mcrHost + "/" + pauseRepo + ":" + pauseTag
	artRef := mcrHost + "/" + kubeNodeRep + ":" + kubeNodeTag
	amd64Blobs := imageBlobs(t, pause.amd64)
	arm64Blobs := imageBlobs(t, pause.arm64)

	mirrorDir := writeHostsToml(t, mcrHost, fmt.Sprintf(`server = "http://%[1]s"
[host."http://%[1]s"]
  capabilities = ["pull", "resolve"]
`, al.addr))
	pathDir := writeHostsToml(t, mcrHost, fmt.Sprintf(`server = "http://%[1]s"
[host."http://%[1]s/v2/%[2]s"]
  capabilities = ["pull", "resolve"]
  override_path = true
`, al.addr, cacheTarget))

	// pull runs one phase: a cold containerd (content removed) pulls the
	// pause image through hosts dir; airlock must have served every blob
	// of the amd64 image to it under repository name wantRepo.
	pull := func(t *testing.T, hostsDir, wantRepo string) {
		if have := cd.contentDigests(t); have[amd64Blobs[1]] {
			t.Fatalf("containerd still holds layer %s before the pull: it would not fetch it", amd64Blobs[1])
		}
		n0 := len(al.airlockRequests(t))
		start := time.Now()
		cd.mustCtr(t, "images", "pull", "--hosts-dir", hostsDir, pauseRef)
		t.Logf("ctr images pull %s: %s", pauseRef, time.Since(start).Round(time.Millisecond))
		have := cd.contentDigests(t)
		for _, d := range amd64Blobs {
			if !have[d] {
				t.Errorf("containerd content store lacks %s after the pull", d)
			}
		}
		var blobs, manifests int
		var bytesServed int64
		for _, l := range al.airlockRequests(t)[n0:] {
			if l.Route == "base" {
				continue
			}
			if l.Repo != wantRepo {
				t.Errorf("airlock served %s %s of repository %q (status %d), want only %q: containerd did not come the way the hosts.toml says",
					l.Method, l.Route, l.Repo, l.Status, wantRepo)
			}
			switch {
			case l.Status != http.StatusOK:
				t.Errorf("airlock answered %s %s %s with %d", l.Method, l.Route, l.Repo, l.Status)
			case l.Route == "blob" && l.Method == http.MethodGet:
				blobs++
				bytesServed += l.Bytes
			case l.Route == "manifest":
				manifests++
			}
		}
		t.Logf("airlock served %d manifest requests and %d blob GETs (%s) of %s; %s", manifests, blobs, mib(bytesServed), wantRepo, al.cacheMetrics(t))
		if blobs < len(amd64Blobs) {
			t.Errorf("airlock served %d blob GETs of %s, want %d (config and layers)", blobs, wantRepo, len(amd64Blobs))
		}
		cd.mustCtr(t, "images", "rm", "--sync", pauseRef)
	}

	t.Run("mirror style ?ns=", func(t *testing.T) {
		pull(t, mirrorDir, pauseRepo)
		// Without ?ns= that name is no cache repository: every 200 above
		// came through containerd's ns parameter.
		resp := newOCIClient(al).do(t, http.MethodGet, "/v2/"+pauseRepo+"/manifests/"+pauseTag, nil, nil)
		checkOCIError(t, "GET of the mirror-style name without ?ns=", resp, []int{http.StatusNotFound}, []string{"NAME_UNKNOWN", "MANIFEST_UNKNOWN"})
	})

	t.Run("path style override_path", func(t *testing.T) {
		before := up.blobGETs(t)
		hits := al.metric(t, "airlock_cache_hits_total", `kind="blob"`)
		pull(t, pathDir, cacheTarget+"/"+pauseRepo)
		after := up.blobGETs(t)
		for _, d := range amd64Blobs {
			if after[d] != before[d] {
				t.Errorf("upstream GETs of %s went from %d to %d during the path-style pull, want no new fetch", d, before[d], after[d])
			}
		}
		if got := al.metric(t, "airlock_cache_hits_total", `kind="blob"`) - hits; got < float64(len(amd64Blobs)) {
			t.Errorf("airlock_cache_hits_total{kind=blob} rose by %g during the path-style pull, want ≥ %d", got, len(amd64Blobs))
		}
	})

	t.Run("artifact with ctr content fetch", func(t *testing.T) {
		start := time.Now()
		cd.mustCtr(t, "content", "fetch", "--hosts-dir", pathDir, artRef)
		t.Logf("ctr content fetch %s: %s", artRef, time.Since(start).Round(time.Millisecond))
		for d, want := range art.blobs {
			got, err := cd.ctrQuiet("content", "get", d)
			if err != nil {
				t.Errorf("ctr content get %s: %v %s", d, err, got)
				continue
			}
			if !bytes.Equal([]byte(got), want) {
				t.Errorf("ctr content get %s: %d bytes differ from the %d seeded", d, len(got), len(want))
			}
		}
		m, err := cd.ctrQuiet("content", "get", art.digest)
		if err != nil || m != string(art.manifest) {
			t.Errorf("ctr content get %s (the artifact manifest) = %v %.200q, want the seeded manifest", art.digest, err, m)
		}
		resp := newOCIClient(al).do(t, http.MethodGet, "/v2/"+cacheTarget+"/"+kubeNodeRep+"/manifests/"+kubeNodeTag, http.Header{"Accept": {mtManifest}}, nil)
		if resp.status != http.StatusOK || !bytes.Contains(resp.body, []byte(kubeNodeArtifactType)) {
			t.Errorf("GET of the cached artifact manifest = %d %.200s, want 200 with artifactType %s", resp.status, resp.body, kubeNodeArtifactType)
		}
	})

	t.Run("TLS with the test CA in hosts.toml", func(t *testing.T) {
		ca := newTestCA(t)
		caFile := ca.caDir + "/ca.crt"
		al.stop()
		al.writeCacheConfig(cacheOptions{upstream: up.upstreamURL(), tls: ca})
		al.start()
		tlsDir := writeHostsToml(t, mcrHost, fmt.Sprintf(`server = "https://%[1]s"
ca = %[2]q
[host."https://%[1]s"]
  capabilities = ["pull", "resolve"]
  ca = %[2]q
`, al.addr, caFile))
		before := up.blobGETs(t)
		pull(t, tlsDir, pauseRepo)
		after := up.blobGETs(t)
		for _, d := range amd64Blobs {
			if after[d] != before[d] {
				t.Errorf("upstream GETs of %s went from %d to %d during the TLS pull, want no new fetch", d, before[d], after[d])
			}
		}
		// The listener really is TLS only: plain HTTP gets no registry answer.
		hc := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
		if resp, err := hc.Get("http://" + al.addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Errorf("plain HTTP GET /v2/ on the TLS listener = %d, want refused", resp.StatusCode)
			}
		}
	})

	// Across everything: one upstream GET per blob that was asked for,
	// none for the arm64 image containerd never wanted.
	want := append(append([]string{}, amd64Blobs...), keys(art.blobs)...)
	got := up.waitBlobGETs(t, want)
	t.Logf("upstream blob GETs (seeding: %d):%s", len(seeded), sortedCounts(got))
	for _, d := range want {
		if got[d]-seeded[d] != 1 {
			t.Errorf("upstream GET /v2/…/blobs/%s: %d times, want exactly 1", d, got[d]-seeded[d])
		}
	}
	for _, d := range arm64Blobs {
		if got[d]-seeded[d] != 0 {
			t.Errorf("upstream GET of arm64 blob %s: %d times, want 0 (only the asked platform is fetched)", d, got[d]-seeded[d])
		}
	}
	if t.Failed() {
		t.Logf("upstream access log:\n%s", strings.Join(accessLines(up.accessLog(t)), "\n"))
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func accessLines(ls []accessLine) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = fmt.Sprintf("%s %s %d %d", l.method, l.uri, l.status, l.bytes)
	}
	return out
}
