//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/redistest"
)

// TestScheduledWarmOnOneReplica: two replicas on one storage and one Redis,
// both with registry.warm for one image. The warm job runs on one replica
// only (cluster singleton "cache-warm"), every blob is fetched from the
// upstream exactly once, and both replicas then serve the image from the
// cache.
func TestScheduledWarmOnOneReplica(t *testing.T) {
	skipUnlessAirlock(t)
	const repo, tag = "oss/v2/kubernetes/pause", "3.10"
	up := startUpstream(t)
	img := buildImage(t, "amd64", 7301, 3, 256<<10)
	want := seedImage(t, up, repo, tag, img)
	seeded := up.blobGETs(t)
	rd := redistest.Start(t)

	opts := func(name string, share *registry) cacheOptions {
		return cacheOptions{
			upstream:      up.upstreamURL(),
			registryExtra: fmt.Sprintf("  warm: { every: 2m, images: [%q] }\n", mcrHost+"/"+repo+":"+tag),
			extra:         fmt.Sprintf("cluster: { name: %s, redis: { address: %q } }\n", name, rd.Addr),
			shareWith:     share,
		}
	}
	r1 := startCacheAirlock(t, opts("r1", nil))
	r2 := startCacheAirlock(t, opts("r2", r1))

	got := up.waitBlobGETs(t, want)
	t.Logf("upstream blob GETs:%s", sortedCounts(got))
	for _, d := range want {
		if n := got[d] - seeded[d]; n != 1 {
			t.Errorf("upstream GETs of %s = %d after the scheduled warm, want exactly 1", shortDigest(d), n)
		}
	}
	// The job holds its lease for the interval (2m): the other replica's
	// tries in the meantime (every 30–45 s) find it held.
	time.Sleep(3 * time.Second)
	runs := 0
	for _, r := range []*registry{r1, r2} {
		if r.airlockLogContains(t, `"msg":"scheduled warm done"`) {
			runs++
		}
	}
	if runs != 1 {
		t.Errorf("scheduled warm ran on %d replicas, want 1", runs)
	}
	for _, r := range []*registry{r1, r2} {
		c := r.client()
		for _, d := range want {
			resp, err := c.Head(r.url("/v2/" + cacheTarget + "/" + repo + "/blobs/" + d))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("replica %s: HEAD blob %s = %d, want 200", r.addr, shortDigest(d), resp.StatusCode)
			}
		}
	}
	if after := up.blobGETs(t); !strings.EqualFold(sortedCounts(after), sortedCounts(got)) {
		t.Errorf("serving the warmed blobs reached the upstream: before%s after%s", sortedCounts(got), sortedCounts(after))
	}
}
