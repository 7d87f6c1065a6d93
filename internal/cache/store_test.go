package cache

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/registry"
)

// fakeUpstream serves blobs and manifests from memory. It is a unit-test
// stand-in; the e2e tests use Debian's docker-registry.
type fakeUpstream struct {
	mu        sync.Mutex
	blobs     map[oci.Digest][]byte
	corrupt   map[oci.Digest]bool // serve wrong bytes
	manifests map[string][]byte   // tag or digest → body
	down      atomic.Bool
	gate      chan struct{} // when set, a blob body stops after its first half until closed
	blobGets  atomic.Int32
	heads     atomic.Int32
	manGets   atomic.Int32  // GetManifest calls (HEADs not included)
	manGate   chan struct{} // when set, GetManifest and HeadManifest wait until closed
}

func newFake() *fakeUpstream {
	return &fakeUpstream{blobs: map[oci.Digest][]byte{}, corrupt: map[oci.Digest]bool{}, manifests: map[string][]byte{}}
}

func (f *fakeUpstream) addBlob(b []byte) oci.Digest {
	d := oci.SHA256.FromBytes(b)
	f.mu.Lock()
	f.blobs[d] = b
	f.mu.Unlock()
	return d
}

func (f *fakeUpstream) addManifest(tag string, body []byte) oci.Digest {
	d := oci.SHA256.FromBytes(body)
	f.mu.Lock()
	f.manifests[tag] = body
	f.manifests[string(d)] = body
	f.mu.Unlock()
	return d
}

func (f *fakeUpstream) HeadManifest(_ context.Context, host, repo string, ref oci.Reference) (oci.Descriptor, error) {
	f.heads.Add(1)
	d, body, err := f.getManifest(host, repo, ref)
	_ = body
	return d, err
}

func (f *fakeUpstream) GetManifest(_ context.Context, host, repo string, ref oci.Reference) (oci.Descriptor, []byte, error) {
	f.manGets.Add(1)
	return f.getManifest(host, repo, ref)
}

func (f *fakeUpstream) getManifest(_, _ string, ref oci.Reference) (oci.Descriptor, []byte, error) {
	f.mu.Lock()
	gate := f.manGate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if f.down.Load() {
		return oci.Descriptor{}, nil, fmt.Errorf("%w: connection refused", ErrUpstreamUnavailable)
	}
	f.mu.Lock()
	body, ok := f.manifests[ref.String()]
	f.mu.Unlock()
	if !ok {
		return oci.Descriptor{}, nil, ErrUpstreamNotFound
	}
	return oci.Descriptor{MediaType: oci.MediaTypeImageManifest, Digest: oci.SHA256.FromBytes(body), Size: int64(len(body))}, body, nil
}

func (f *fakeUpstream) GetBlob(_ context.Context, _, _ string, d oci.Digest) (io.ReadCloser, int64, error) {
	f.blobGets.Add(1)
	if f.down.Load() {
		return nil, 0, fmt.Errorf("%w: connection refused", ErrUpstreamUnavailable)
	}
	f.mu.Lock()
	b, ok := f.blobs[d]
	bad := f.corrupt[d]
	gate := f.gate
	f.mu.Unlock()
	if !ok {
		return nil, 0, ErrUpstreamNotFound
	}
	if bad {
		b = bytes.Repeat([]byte{'x'}, len(b))
	}
	half := len(b) / 2
	r := io.MultiReader(bytes.NewReader(b[:half]), gatedReader{gate, bytes.NewReader(b[half:])})
	return io.NopCloser(r), int64(len(b)), nil
}

func (f *fakeUpstream) Referrers(context.Context, string, string, oci.Digest) ([]oci.Descriptor, error) {
	return nil, ErrUpstreamNotFound
}

type gatedReader struct {
	gate chan struct{}
	r    io.Reader
}

func (g gatedReader) Read(p []byte) (int, error) {
	if g.gate != nil {
		<-g.gate
	}
	return g.r.Read(p)
}

func newStore(t testing.TB, up *fakeUpstream, now func() time.Time) (*Store, *blobstore.Store) {
	t.Helper()
	bs, err := blobstore.Open(t.TempDir(), blobstore.Options{Now: now}) // one clock: tag times are on the store
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{CacheRules: []Rule{{Name: "mcr", SourceRepo: "mcr.microsoft.com/*", TargetRepo: "aks/*"}}}
	cfg.SetDefaults()
	cfg.UpstreamTimeout = 2 * time.Second
	s, err := New(cfg, Deps{Local: registry.NewLocalStore(bs), Blobs: bs, Upstream: up, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waitFills(t, s) }) // runs before the temp dir goes
	return s, bs
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestConcurrentMissesCoalesce(t *testing.T) {
	up := newFake()
	content := random(3 << 20)
	d := up.addBlob(content)
	s, bs := newStore(t, up, nil)
	const clients = 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, size, err := s.OpenBlob(context.Background(), "aks/oss/pause", d)
			if err != nil {
				errs <- err
				return
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil || size != int64(len(content)) || !bytes.Equal(got, content) {
				errs <- fmt.Errorf("read %d bytes (size %d), err %v; content equal %v", len(got), size, err, bytes.Equal(got, content))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFills(t, s)
	if n := up.blobGets.Load(); n != 1 {
		t.Errorf("upstream blob GETs for %d concurrent misses = %d, want 1", clients, n)
	}
	if _, err := bs.BlobLinked("aks/oss/pause", d); err != nil {
		t.Errorf("blob not committed after the fill: %v", err)
	}
}

func TestStreamsBeforeFillEndsAndHoldsBackLastByte(t *testing.T) {
	up := newFake()
	content := random(1 << 20)
	d := up.addBlob(content)
	up.gate = make(chan struct{})
	s, bs := newStore(t, up, nil)
	r, _, err := s.OpenBlob(context.Background(), "aks/x", d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.(*fillReader).StreamToEnd() // this reader reads to the end
	first := make([]byte, len(content)/2-1)
	if _, err := io.ReadFull(r, first); err != nil || !bytes.Equal(first, content[:len(first)]) {
		t.Fatalf("reading the first half while the upstream stalls: %v", err)
	}
	// The client that leaves does not stop the fill.
	r2, _, _ := s.OpenBlob(context.Background(), "aks/y", d)
	r2.Close()
	close(up.gate)
	rest, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(append(first, rest...), content) {
		t.Fatalf("full read = %d bytes, %v", len(first)+len(rest), err)
	}
	waitFills(t, s)
	if _, err := bs.BlobLinked("aks/y", d); err != nil {
		t.Errorf("blob not linked for the client that left: %v", err)
	}
}

func TestLastByteWaitsForVerification(t *testing.T) {
	f := newFill("sha256:x", "r")
	f.size, f.written, f.path = 4, 4, "/dev/null"
	close(f.started)
	r := &fillReader{f: f, off: 3, stream: true}
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Read of the last byte before commit returned %v, want it to wait", err)
	case <-time.After(50 * time.Millisecond):
	}
	f.fail(errors.New("digest mismatch"))
	if err := <-done; !errors.Is(err, errFillFailed) {
		t.Errorf("Read after failure = %v, want errFillFailed", err)
	}
}

func TestCorruptUpstreamNeverCached(t *testing.T) {
	up := newFake()
	content := random(256 << 10)
	d := up.addBlob(content)
	up.corrupt[d] = true
	s, bs := newStore(t, up, nil)
	r, _, err := s.OpenBlob(context.Background(), "aks/x", d)
	if err == nil {
		_, err = io.ReadAll(r)
		r.Close()
	}
	if err == nil {
		t.Fatal("reading a blob the upstream corrupted succeeded")
	}
	if _, err := bs.Stat(d); !errors.Is(err, blobstore.ErrBlobUnknown) {
		t.Errorf("corrupt blob stored: %v", err)
	}
	up.mu.Lock()
	up.corrupt[d] = false
	up.mu.Unlock()
	r, _, err = s.OpenBlob(context.Background(), "aks/x", d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, content) || up.blobGets.Load() != 2 {
		t.Errorf("second request: %v, equal %v, upstream GETs %d (want a fresh fetch: 2)", err, bytes.Equal(got, content), up.blobGets.Load())
	}
}

func TestTagTTLRevalidationAndStale(t *testing.T) {
	up := newFake()
	cfg := random(100)
	_ = up.addBlob(cfg)
	m1 := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + string(oci.SHA256.FromBytes(cfg)) + `","size":100},"layers":[]}`)
	d1 := up.addManifest("v1", m1)
	var clock atomic.Int64
	now := func() time.Time { return time.Unix(clock.Load(), 0) }
	s, _ := newStore(t, up, now)
	ctx := context.Background()
	get := func() (oci.Digest, error) {
		m, err := s.GetManifest(ctx, "aks/app", oci.Reference{Tag: "v1"})
		return m.Digest, err
	}
	if d, err := get(); err != nil || d != d1 {
		t.Fatalf("cold GET = %s, %v", d, err)
	}
	heads := up.heads.Load()
	if _, err := get(); err != nil || up.heads.Load() != heads {
		t.Errorf("GET within tagTTL asked upstream: heads %d → %d", heads, up.heads.Load())
	}
	m2 := bytes.Replace(m1, []byte(`"layers":[]`), []byte(`"layers":[],"annotations":{"v":"2"}`), 1)
	d2 := up.addManifest("v1", m2)
	clock.Add(int64(DefaultTagTTL/time.Second) + 1)
	if d, err := get(); err != nil || d != d2 {
		t.Errorf("GET after tagTTL = %s, %v; want the new digest %s", d, err, d2)
	}
	up.down.Store(true)
	clock.Add(int64(DefaultTagTTL/time.Second) + 1)
	if d, err := get(); err != nil || d != d2 {
		t.Errorf("GET with upstream down = %s, %v; want the stale %s", d, err, d2)
	}
	// Within the down window the upstream is not asked again: stale at once.
	heads = up.heads.Load()
	if d, err := get(); err != nil || d != d2 || up.heads.Load() != heads {
		t.Errorf("GET in the down window = %s, %v, upstream HEADs %d → %d; want the stale digest and no upstream call", d, err, heads, up.heads.Load())
	}
	clock.Add(int64(downWindow/time.Second) + 1)
	if _, err := get(); err != nil || up.heads.Load() != heads+1 {
		t.Errorf("GET after the down window: upstream HEADs %d → %d, want one new try", heads, up.heads.Load())
	}
	_, err := s.GetManifest(ctx, "aks/app", oci.Reference{Tag: "cold"})
	if err == nil || !strings.Contains(err.Error(), "UNAVAILABLE") || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("cold tag with upstream down = %v, want UNAVAILABLE saying unreachable", err)
	}
	if _, err := s.GetManifest(ctx, "aks/app", oci.Reference{Digest: d1}); err != nil {
		t.Errorf("cached digest with upstream down = %v", err)
	}
}

func TestPushIntoCacheNamespaceDenied(t *testing.T) {
	s, _ := newStore(t, newFake(), nil)
	_, err := s.NewUpload(context.Background(), "aks/app")
	if err == nil || !strings.Contains(err.Error(), "DENIED") || !strings.Contains(err.Error(), "read-only cache") {
		t.Errorf("NewUpload in a cache namespace = %v, want DENIED", err)
	}
	if _, err := s.NewUpload(context.Background(), "team/app"); err != nil {
		t.Errorf("NewUpload outside = %v, want a normal upload", err)
	}
}

// waitFills waits until no fill is registered: every blob fetched so far
// has been stored (or failed).
func waitFills(t testing.TB, s *Store) {
	t.Helper()
	for i := 0; i < 500; i++ {
		s.fillsMu.Lock()
		n := len(s.fills)
		s.fillsMu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("fills still registered after 5s")
}

// A tag fetched through one replica is fresh for another on the same
// storage: the fetch time is the tag object's, not only in memory.
func TestTagFreshnessSharedByReplicas(t *testing.T) {
	up := newFake()
	cfg := random(100)
	_ = up.addBlob(cfg)
	m1 := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + string(oci.SHA256.FromBytes(cfg)) + `","size":100},"layers":[]}`)
	up.addManifest("v1", m1)
	a, bs := newStore(t, up, nil)
	ctx := context.Background()
	if _, err := a.GetManifest(ctx, "aks/app", oci.Reference{Tag: "v1"}); err != nil {
		t.Fatal(err)
	}
	bs2, err := blobstore.Open(bs.Root(), blobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bs2.Close()
	c := &Config{CacheRules: []Rule{{Name: "mcr", SourceRepo: "mcr.microsoft.com/*", TargetRepo: "aks/*"}}}
	c.SetDefaults()
	b, err := New(c, Deps{Local: registry.NewLocalStore(bs2), Blobs: bs2, Upstream: up})
	if err != nil {
		t.Fatal(err)
	}
	heads := up.heads.Load()
	if _, err := b.GetManifest(ctx, "aks/app", oci.Reference{Tag: "v1"}); err != nil {
		t.Fatal(err)
	}
	if up.heads.Load() != heads {
		t.Errorf("the second replica asked the upstream for a tag the first fetched within tagTTL: HEADs %d → %d",
			heads, up.heads.Load())
	}
}
