//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestCacheCorruptUpstream: an upstream that serves wrong bytes (same
// length) for one layer's digest. Every client asking for that layer sees
// an error — a non-200 or a connection cut before the end, never a
// complete clean body — nothing is stored under the digest,
// airlock_cache_verification_failures_total goes up, and each new request
// fetches again; once the upstream serves the right bytes, the pull works.
func TestCacheCorruptUpstream(t *testing.T) {
	skipUnlessAirlock(t)
	const (
		repo = "oss/v2/kubernetes/kube-state-metrics"
		tag  = "v2.15.0-4"
	)
	img := buildImage(t, "amd64", 2150, 2, 8<<20)
	bad := newFakeUpstream(t, repo, tag, img)
	blobs := imageBlobs(t, img)
	corrupt := blobs[2] // the second layer
	bad.corrupt(corrupt)
	al := startCacheAirlock(t, cacheOptions{upstream: bad.url})
	c := newOCIClient(al)
	imgDigest, _ := img.Digest()
	ref, err := name.ParseReference(al.addr+"/"+cacheTarget+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	layerSize := int64(len(bad.blobs[corrupt]))

	// checkNothingCached: no file under the digest, every stored blob
	// hashes to its name, and the temp file is gone.
	checkNothingCached := func(t *testing.T) {
		t.Helper()
		if p, ok := al.storedBlobs(t)[corrupt]; ok {
			t.Errorf("storage holds %s under the corrupt layer's digest", p)
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(al.tmpFiles(t)) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if left := al.tmpFiles(t); len(left) > 0 {
			t.Errorf("storage tmp still holds %v after the failed fill", left)
		}
	}

	t.Run("concurrent clients all see an error", func(t *testing.T) {
		failures := al.metric(t, "airlock_cache_verification_failures_total")
		gets := bad.gets(corrupt)
		paths := []string{
			"/v2/" + cacheTarget + "/" + repo + "/blobs/" + corrupt,
			"/v2/" + repo + "/blobs/" + corrupt + "?ns=" + mcrHost,
			"/v2/" + cacheTarget + "/" + repo + "/blobs/" + corrupt,
		}
		res := make([]streamResult, len(paths))
		var wg sync.WaitGroup
		start := time.Now()
		for i, p := range paths {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i] = streamGET(c, p, start)
			}()
		}
		wg.Wait()
		for i, r := range res {
			t.Logf("client %d (%s): status %d, %s of %s, done after %s, err %v", i, paths[i], r.status, mib(r.n), mib(layerSize), r.done.Round(time.Millisecond), r.err)
			if r.status == http.StatusOK && r.err == nil {
				t.Errorf("client %d received a complete 200 response (%d bytes, %s) for a digest whose upstream bytes are wrong, want an error", i, r.n, r.digest)
			}
			if r.digest == corrupt {
				t.Errorf("client %d somehow got the right bytes", i)
			}
		}
		got := al.metric(t, "airlock_cache_verification_failures_total") - failures
		t.Logf("upstream GETs of the corrupt layer: %d; verification failures +%g; %s", bad.gets(corrupt)-gets, got, al.cacheMetrics(t))
		if got < 1 {
			t.Errorf("airlock_cache_verification_failures_total rose by %g, want ≥ 1", got)
		}
		if n := bad.gets(corrupt) - gets; n != 1 {
			t.Errorf("upstream GETs of the corrupt layer for %d concurrent clients = %d, want 1", len(paths), n)
		}
		if !al.airlockLogContains(t, "failed verification") {
			t.Errorf("airlock logged nothing about the failed verification")
		}
		checkNothingCached(t)
	})

	t.Run("the next pull fetches again and fails again", func(t *testing.T) {
		gets := bad.gets(corrupt)
		failures := al.metric(t, "airlock_cache_verification_failures_total")
		_, err := pullAndVerify(ref, imgDigest, remote.WithTransport(al.client().Transport))
		t.Logf("pull with the corrupt upstream: %v", err)
		if err == nil {
			t.Fatalf("pull of %s succeeded although the upstream serves wrong bytes for %s", ref, corrupt)
		}
		if n := bad.gets(corrupt) - gets; n != 1 {
			t.Errorf("upstream GETs of the corrupt layer for the next pull = %d, want 1 (nothing was cached, so it fetches again)", n)
		}
		if got := al.metric(t, "airlock_cache_verification_failures_total") - failures; got < 1 {
			t.Errorf("airlock_cache_verification_failures_total rose by %g for the second fill, want ≥ 1", got)
		}
		checkNothingCached(t)
	})

	t.Run("upstream fixed: the pull works", func(t *testing.T) {
		bad.corrupt("")
		gets := bad.gets(corrupt)
		n, err := pullAndVerify(ref, imgDigest, remote.WithTransport(al.client().Transport))
		if err != nil {
			t.Fatalf("pull after the upstream was fixed: %v", err)
		}
		t.Logf("pull after the fix: %d blobs verified; upstream GETs of the layer +%d", n, bad.gets(corrupt)-gets)
		if n := bad.gets(corrupt) - gets; n != 1 {
			t.Errorf("upstream GETs of the layer after the fix = %d, want 1", n)
		}
		// The last byte goes out once the digest verifies; the fsync and
		// rename follow at once, so give the store a moment.
		if !al.eventuallyStored(t, corrupt) {
			t.Errorf("layer %s not stored after a good fill", corrupt)
		}
	})
}

// fakeUpstream is a minimal read-only OCI registry serving one image, that
// can serve wrong bytes (same length, one byte flipped) for one digest.
// Blob bodies are sent in chunks over about a second, so concurrent
// requests overlap with the fill.
type fakeUpstream struct {
	url       string
	repo, tag string
	manifest  []byte
	mdigest   string
	blobs     map[string][]byte
	bad       atomic.Value // string: the digest served corrupt, "" for none
	mu        sync.Mutex
	getCount  map[string]int
}

func newFakeUpstream(t testing.TB, repo, tag string, img v1.Image) *fakeUpstream {
	t.Helper()
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUpstream{repo: repo, tag: tag, manifest: raw, mdigest: sha256Digest(raw), blobs: map[string][]byte{}, getCount: map[string]int{}}
	f.bad.Store("")
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	f.blobs[sha256Digest(cfg)] = cfg
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		f.blobs[sha256Digest(b)] = b
	}
	srv := httptest.NewServer(http.HandlerFunc(f.serve)) // 127.0.0.1:0
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *fakeUpstream) corrupt(d string) { f.bad.Store(d) }

func (f *fakeUpstream) gets(d string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.getCount[d]
}

func (f *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	notFound := func(code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"not here"}]}`, code)
	}
	if r.URL.Path == "/v2/" {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
		return
	}
	prefix := "/v2/" + f.repo + "/"
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		notFound("NAME_UNKNOWN")
		return
	}
	if ref, ok := strings.CutPrefix(rest, "manifests/"); ok {
		if ref != f.tag && ref != f.mdigest {
			notFound("MANIFEST_UNKNOWN")
			return
		}
		w.Header().Set("Content-Type", mtManifest)
		w.Header().Set("Docker-Content-Digest", f.mdigest)
		w.Header().Set("Content-Length", strconv.Itoa(len(f.manifest)))
		if r.Method == http.MethodGet {
			w.Write(f.manifest)
		}
		return
	}
	d, ok := strings.CutPrefix(rest, "blobs/")
	b, have := f.blobs[d]
	if !ok || !have {
		notFound("BLOB_UNKNOWN")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Docker-Content-Digest", d)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method != http.MethodGet {
		return
	}
	f.mu.Lock()
	f.getCount[d]++
	f.mu.Unlock()
	if f.bad.Load().(string) == d {
		b = bytes.Clone(b)
		b[len(b)/2] ^= 0xff
	}
	const chunks = 32
	step := (len(b) + chunks - 1) / chunks
	for off := 0; off < len(b); off += step {
		if _, err := w.Write(b[off:min(off+step, len(b))]); err != nil {
			return
		}
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		if len(b) > 1<<20 {
			time.Sleep(30 * time.Millisecond)
		}
	}
}
