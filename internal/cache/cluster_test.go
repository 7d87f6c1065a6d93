package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/cluster"
	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/registry"
	"github.com/airlockdev/airlock/internal/testkit/azuritetest"
	"github.com/airlockdev/airlock/internal/testkit/objstoretest"
	"github.com/airlockdev/airlock/internal/testkit/redistest"
)

// The tests here run two "replicas": two Stores, each with its own
// cluster.Cluster on one real redis-server and its own blobstore.Store
// opened on the same shared directory, in front of fake upstreams that
// count their requests.

// testLeaseTTL is the fill lease TTL of the tests: short, so that a dead
// holder is replaced within seconds.
const testLeaseTTL = 1500 * time.Millisecond

// waitDeadline bounds every wait of these tests (generous: never a timing
// assertion).
const waitDeadline = 30 * time.Second

type replica struct {
	s  *Store
	bs *blobstore.Store
	c  *cluster.Cluster
}

// newCluster starts a cluster on addr and waits until it coordinates
// through Redis.
func newCluster(t *testing.T, name, addr string) *cluster.Cluster {
	t.Helper()
	return startCluster(t, cluster.Config{Name: name, Redis: cluster.RedisConfig{Addresses: []string{addr}}})
}

// startCluster starts a cluster of cfg and waits until it coordinates
// through Redis.
func startCluster(t *testing.T, cfg cluster.Config) *cluster.Cluster {
	t.Helper()
	name := cfg.Name
	c, err := cluster.New(cfg, cluster.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Shutdown(ctx)
	})
	waitUntil(t, name+" coordinating through redis", func() bool { d, _ := c.Degraded(); return !d })
	return c
}

// sharedStorage opens one replica's blob store on storage every replica
// of a test shares.
type sharedStorage func(t *testing.T, now func() time.Time) *blobstore.Store

// onDir is a shared directory.
func onDir(t *testing.T) sharedStorage {
	dir := t.TempDir()
	return func(t *testing.T, now func() time.Time) *blobstore.Store {
		bs, err := blobstore.Open(dir, blobstore.Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { bs.Close() })
		return bs
	}
}

// onAzurite is a fresh container on a real Azurite (skipped without it).
func onAzurite(t *testing.T) sharedStorage {
	az := azuritetest.Start(t, azuritetest.InMemory())
	azuritetest.SetEnv(t)
	url := az.NewContainer(t)
	return func(t *testing.T, now func() time.Time) *blobstore.Store {
		return objstoretest.Store(t, url, blobstore.Options{Now: now})
	}
}

// onBackends runs test on a shared directory and on Azurite.
func onBackends(t *testing.T, test func(t *testing.T, storage sharedStorage)) {
	t.Run("dir", func(t *testing.T) { test(t, onDir(t)) })
	t.Run("azurite", func(t *testing.T) { test(t, onAzurite(t)) })
}

// newReplica builds a cache Store with its own cluster on redisAddr and its
// own blob store on the shared storage.
func newReplica(t *testing.T, name string, shared sharedStorage, redisAddr string, up Upstream, now func() time.Time) *replica {
	t.Helper()
	bs := shared(t, now)
	c := newCluster(t, name, redisAddr)
	cfg := &Config{CacheRules: []Rule{{Name: "mcr", SourceRepo: "mcr.microsoft.com/*", TargetRepo: "aks/*"}}}
	cfg.SetDefaults()
	cfg.UpstreamTimeout = 5 * time.Second
	s, err := New(cfg, Deps{Local: registry.NewLocalStore(bs), Blobs: bs, Upstream: up, Now: now, Cluster: c, Logger: testLogger(t, name)})
	if err != nil {
		t.Fatal(err)
	}
	s.leaseTTL = testLeaseTTL
	t.Cleanup(func() { waitFillsFor(t, s, waitDeadline) }) // before the store closes
	return &replica{s: s, bs: bs, c: c}
}

func testLogger(t *testing.T, name string) *slog.Logger {
	if os.Getenv("AIRLOCK_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", name)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after %v", what, waitDeadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitFillsFor(t *testing.T, s *Store, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		s.fillsMu.Lock()
		n := len(s.fills)
		s.fillsMu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("fills still registered after %v", d)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fillRegistered(s *Store, d oci.Digest) bool {
	s.fillsMu.Lock()
	defer s.fillsMu.Unlock()
	_, ok := s.fills[d]
	return ok
}

// getBlob reads d through s and checks the bytes by their digest.
func getBlob(ctx context.Context, s *Store, repo string, d oci.Digest) error {
	r, size, err := s.OpenBlob(ctx, repo, d)
	if err != nil {
		return err
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read %s: %w", d, err)
	}
	if int64(len(got)) != size || oci.SHA256.FromBytes(got) != d {
		return fmt.Errorf("read %s: %d bytes (size %d) hashing to %s", d, len(got), size, oci.SHA256.FromBytes(got))
	}
	return nil
}

func leaseCount(s *Store, kind, result string) int {
	return int(testutil.ToFloat64(s.m.fillLeases.WithLabelValues(kind, result)))
}

func leaseSummary(reps ...*replica) string {
	var b bytes.Buffer
	for i, r := range reps {
		fmt.Fprintf(&b, "replica %d:", i)
		for _, kind := range []string{"blob", "manifest"} {
			for _, res := range []string{leaseHeld, leaseLocal, leaseWaited, leaseTookOver, leaseNone} {
				if n := leaseCount(r.s, kind, res); n > 0 {
					fmt.Fprintf(&b, " %s/%s=%d", kind, res, n)
				}
			}
		}
		b.WriteString("; ")
	}
	return b.String()
}

// run starts n clients, client i on reps[i%len(reps)], and returns their
// errors once all are done.
func run(n int, reps []*replica, client func(i int, s *Store) error) []error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = client(i, reps[i%len(reps)].s)
		}()
	}
	wg.Wait()
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// 20 clients spread over two replicas pull one cold blob: one upstream
// GET for the whole cluster, and every client gets the right bytes. The
// upstream holds its body until both replicas have a fill for the blob, so
// one of them waits for the other's lease.
func TestClusterColdBlobOneUpstreamGet(t *testing.T) {
	onBackends(t, func(t *testing.T, dir sharedStorage) {
		rd := redistest.Start(t)
		up := newFake()
		content := random(2 << 20)
		d := up.addBlob(content)
		gate := make(chan struct{})
		up.gate = gate
		a := newReplica(t, "a", dir, rd.Addr, up, nil)
		b := newReplica(t, "b", dir, rd.Addr, up, nil)

		var errs []error
		done := make(chan struct{})
		go func() {
			defer close(done)
			errs = run(20, []*replica{a, b}, func(i int, s *Store) error {
				if i%4 == 3 { // some HEADs (StatBlob) too
					if size, err := s.StatBlob(context.Background(), "aks/oss/pause", d); err != nil || size != int64(len(content)) {
						return fmt.Errorf("HEAD: size %d, %v", size, err)
					}
				}
				return getBlob(context.Background(), s, "aks/oss/pause", d)
			})
		}()
		waitUntil(t, "both replicas filling", func() bool {
			return up.blobGets.Load() == 1 && fillRegistered(a.s, d) && fillRegistered(b.s, d)
		})
		close(gate)
		<-done
		for _, err := range errs {
			t.Error(err)
		}
		if n := up.blobGets.Load(); n != 1 {
			t.Errorf("upstream blob GETs for 20 clients on 2 replicas = %d, want 1", n)
		}
		if w := leaseCount(a.s, "blob", leaseWaited) + leaseCount(b.s, "blob", leaseWaited); w != 1 {
			t.Errorf("replicas that waited for the other's fill = %d, want 1 (%s)", w, leaseSummary(a, b))
		}
		t.Logf("20 clients, 2 replicas, 1 blob of %d bytes: %d upstream GET; %s", len(content), up.blobGets.Load(), leaseSummary(a, b))
	})
}

// 20 clients spread over two replicas pull an image (manifest by digest,
// config and two layers): one upstream request per manifest and per blob.
func TestClusterColdImageOneUpstreamGetEach(t *testing.T) {
	onBackends(t, func(t *testing.T, dir sharedStorage) {
		rd := redistest.Start(t)
		up := newFake()
		cfgBlob, l1, l2 := random(1000), random(1<<20), random(3<<20)
		dc, d1, d2 := up.addBlob(cfgBlob), up.addBlob(l1), up.addBlob(l2)
		desc := func(mt string, d oci.Digest, n int) string {
			return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, mt, d, n)
		}
		body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` +
			desc("application/vnd.oci.image.config.v1+json", dc, len(cfgBlob)) + `,"layers":[` +
			desc("application/vnd.oci.image.layer.v1.tar+gzip", d1, len(l1)) + "," +
			desc("application/vnd.oci.image.layer.v1.tar+gzip", d2, len(l2)) + `]}`)
		md := up.addManifest("v1", body)
		mgate := make(chan struct{})
		up.manGate = mgate
		a := newReplica(t, "a", dir, rd.Addr, up, nil)
		b := newReplica(t, "b", dir, rd.Addr, up, nil)

		var errs []error
		done := make(chan struct{})
		go func() {
			defer close(done)
			errs = run(20, []*replica{a, b}, func(i int, s *Store) error {
				ctx := context.Background()
				m, err := s.GetManifest(ctx, "aks/app", oci.Reference{Digest: md})
				if err != nil {
					return fmt.Errorf("manifest: %w", err)
				}
				if oci.SHA256.FromBytes(m.Body) != md {
					return fmt.Errorf("manifest body hashes to %s, want %s", oci.SHA256.FromBytes(m.Body), md)
				}
				for _, d := range []oci.Digest{dc, d1, d2} {
					if err := getBlob(ctx, s, "aks/app", d); err != nil {
						return err
					}
				}
				return nil
			})
		}()
		waitUntil(t, "the manifest asked upstream", func() bool { return up.manGets.Load() >= 1 })
		time.Sleep(200 * time.Millisecond) // let the other replica reach the lease (no assertion on it)
		close(mgate)
		<-done
		for _, err := range errs {
			t.Error(err)
		}
		if n := up.manGets.Load(); n != 1 {
			t.Errorf("upstream manifest GETs = %d, want 1", n)
		}
		if n := up.blobGets.Load(); n != 3 {
			t.Errorf("upstream blob GETs for 3 blobs = %d, want 3", n)
		}
		t.Logf("20 clients, 2 replicas, image of 1 manifest + 3 blobs: %d manifest GET, %d blob GETs; %s",
			up.manGets.Load(), up.blobGets.Load(), leaseSummary(a, b))
	})
}

// The replica filling a blob dies mid-fill (its upstream body stalls, then
// its cluster stops without releasing the lease): a client on the other
// replica completes once the lease expired, with its own upstream GET.
func TestClusterHolderDiesOtherTakesOver(t *testing.T) {
	onBackends(t, func(t *testing.T, dir sharedStorage) {
		rd := redistest.Start(t)
		content := random(1 << 20)
		upA, upB := newFake(), newFake()
		d := upA.addBlob(content)
		upB.addBlob(content)
		gate := make(chan struct{})
		upA.gate = gate // A's upstream stalls after half the body
		a := newReplica(t, "a", dir, rd.Addr, upA, nil)
		b := newReplica(t, "b", dir, rd.Addr, upB, nil)

		aErr := make(chan error, 1)
		go func() { aErr <- getBlob(context.Background(), a.s, "aks/x", d) }()
		waitUntil(t, "A filling under the lease", func() bool {
			return upA.blobGets.Load() == 1 && leaseCount(a.s, "blob", leaseHeld) == 1
		})
		bErr := make(chan error, 1)
		go func() { bErr <- getBlob(context.Background(), b.s, "aks/x", d) }()
		waitUntil(t, "B waiting for A's fill", func() bool { return fillRegistered(b.s, d) })
		// kill -9 of A's coordination: no release, no more renewals.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := a.c.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		select {
		case err := <-bErr:
			if err != nil {
				t.Fatalf("client on B after A died: %v", err)
			}
		case <-time.After(waitDeadline):
			t.Fatalf("client on B not served %v after A died", waitDeadline)
		}
		if n := upB.blobGets.Load(); n != 1 {
			t.Errorf("B's upstream GETs = %d, want 1 (took over)", n)
		}
		if n := leaseCount(b.s, "blob", leaseTookOver); n != 1 {
			t.Errorf("B took over %d times, want 1 (%s)", n, leaseSummary(a, b))
		}
		// A's fill (still running: content addressed, it goes on) ends too.
		waitUntil(t, "A's lease lost", func() bool {
			return testutil.ToFloat64(a.s.m.fillLeaseLost.WithLabelValues("blob")) == 1
		})
		close(gate)
		if err := <-aErr; err != nil {
			t.Errorf("client on A: %v", err)
		}
		if err := getBlob(context.Background(), b.s, "aks/x", d); err != nil {
			t.Errorf("blob after both fills: %v", err)
		}
		t.Logf("holder died mid-fill: B took over with %d upstream GET; A's fill went on after losing its lease; %s",
			upB.blobGets.Load(), leaseSummary(a, b))
	})
}

// Redis stopped: both replicas keep serving, at most one upstream GET per
// blob per replica. Redis back: cluster-wide again, without a restart.
func TestClusterRedisDownThenBack(t *testing.T) {
	rd := redistest.Start(t)
	up := newFake()
	dir := onDir(t)
	a := newReplica(t, "a", dir, rd.Addr, up, nil)
	b := newReplica(t, "b", dir, rd.Addr, up, nil)
	reps := []*replica{a, b}

	rd.Stop()
	// Each replica finds out at its next Redis call or health PING (every
	// second); from then on its leases are local.
	for _, r := range reps {
		waitUntil(t, "degraded with redis down", func() bool { d, _ := r.c.Degraded(); return d })
	}
	cold := up.addBlob(random(1 << 20))
	errs := run(20, reps, func(_ int, s *Store) error { return getBlob(context.Background(), s, "aks/x", cold) })
	for _, err := range errs {
		t.Errorf("redis down: %v", err)
	}
	downGets := up.blobGets.Load()
	if downGets < 1 || downGets > 2 {
		t.Errorf("upstream GETs of one blob with redis down, 2 replicas = %d, want 1 or 2", downGets)
	}
	for i, r := range reps {
		if deg, _ := r.c.Degraded(); !deg {
			t.Errorf("replica %d not degraded with redis down after the pulls", i)
		}
	}

	rd.Restart()
	for _, r := range reps {
		waitUntil(t, "coordinating through redis again", func() bool { d, _ := r.c.Degraded(); return !d })
	}
	gate := make(chan struct{})
	up.mu.Lock()
	up.gate = gate
	up.mu.Unlock()
	warm := up.addBlob(random(1 << 20))
	before := up.blobGets.Load()
	done := make(chan []error, 1)
	go func() {
		done <- run(20, reps, func(_ int, s *Store) error { return getBlob(context.Background(), s, "aks/x", warm) })
	}()
	waitUntil(t, "both replicas filling", func() bool {
		return up.blobGets.Load() > before && fillRegistered(a.s, warm) && fillRegistered(b.s, warm)
	})
	close(gate)
	for _, err := range <-done {
		t.Errorf("redis back: %v", err)
	}
	if n := up.blobGets.Load() - before; n != 1 {
		t.Errorf("upstream GETs of one blob after redis came back = %d, want 1", n)
	}
	t.Logf("redis down: %d upstream GETs for 1 blob on 2 replicas (local leases); redis back: %d; %s",
		downGets, up.blobGets.Load()-before, leaseSummary(a, b))
}

// An expired tag, 10 clients over two replicas: one upstream manifest
// request (the HEAD revalidating it) for the cluster.
func TestClusterTagRevalidationOnce(t *testing.T) {
	rd := redistest.Start(t)
	up := newFake()
	cfgBlob := random(100)
	up.addBlob(cfgBlob)
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		string(oci.SHA256.FromBytes(cfgBlob)) + `","size":100},"layers":[]}`)
	md := up.addManifest("v1", body)
	var clock atomic.Int64
	clock.Store(time.Now().Unix())
	now := func() time.Time { return time.Unix(clock.Load(), 0) }
	dir := onDir(t)
	a := newReplica(t, "a", dir, rd.Addr, up, now)
	b := newReplica(t, "b", dir, rd.Addr, up, now)
	ctx := context.Background()
	if _, err := a.s.GetManifest(ctx, "aks/app", oci.Reference{Tag: "v1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.GetManifest(ctx, "aks/app", oci.Reference{Tag: "v1"}); err != nil {
		t.Fatal(err)
	}
	clock.Add(int64(DefaultTagTTL/time.Second) + 1)
	heads, gets := up.heads.Load(), up.manGets.Load()
	mgate := make(chan struct{})
	up.mu.Lock()
	up.manGate = mgate
	up.mu.Unlock()
	done := make(chan []error, 1)
	go func() {
		done <- run(10, []*replica{a, b}, func(_ int, s *Store) error {
			m, err := s.GetManifest(ctx, "aks/app", oci.Reference{Tag: "v1"})
			if err == nil && m.Digest != md {
				err = fmt.Errorf("tag v1 = %s, want %s", m.Digest, md)
			}
			return err
		})
	}()
	waitUntil(t, "the tag revalidated upstream", func() bool { return up.heads.Load() > heads })
	time.Sleep(200 * time.Millisecond) // let the other replica reach the lease (no assertion on it)
	close(mgate)
	for _, err := range <-done {
		t.Error(err)
	}
	h, g := up.heads.Load()-heads, up.manGets.Load()-gets
	if h+g != 1 {
		t.Errorf("upstream manifest requests revalidating one tag for 10 clients on 2 replicas = %d HEAD + %d GET, want 1", h, g)
	}
	t.Logf("expired tag, 10 clients, 2 replicas: %d HEAD, %d GET upstream; %s", h, g, leaseSummary(a, b))
}

// With a cluster the quota runs as the singleton job: it still evicts.
func TestClusterQuotaSingletonEvicts(t *testing.T) {
	rd := redistest.Start(t)
	up := newFake()
	dir := onDir(t)
	a := newReplica(t, "a", dir, rd.Addr, up, nil)
	b := newReplica(t, "b", dir, rd.Addr, up, nil)
	var ds []oci.Digest
	for range 4 {
		ds = append(ds, up.addBlob(random(256<<10)))
	}
	for _, d := range ds {
		if err := getBlob(context.Background(), a.s, "aks/x", d); err != nil {
			t.Fatal(err)
		}
	}
	waitFillsFor(t, a.s, waitDeadline) // committed
	a.s.quota, b.s.quota = 512<<10, 512<<10
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range []*replica{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); r.s.Run(ctx) }()
	}
	defer func() { cancel(); wg.Wait() }()
	waitUntil(t, "the cache under its quota", func() bool {
		var total int64
		for _, d := range ds {
			if n, err := a.bs.Stat(d); err == nil {
				total += n
			}
		}
		return total <= 512<<10
	})
	cancel()
	wg.Wait()
	evicted := testutil.ToFloat64(a.s.m.evictedBytes) + testutil.ToFloat64(b.s.m.evictedBytes)
	if evicted < 512<<10 {
		t.Errorf("evicted %.0f bytes, want at least 512 KiB", evicted)
	}
	t.Logf("quota 512 KiB over 1 MiB cached, 2 replicas: %.0f bytes evicted", evicted)
}
