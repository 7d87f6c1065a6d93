package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/airlockdev/airlock/internal/cluster"
	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/registry"
	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/testkit/redistest"
)

// Streaming a fill from the replica that fetches it: two replicas, each a
// cache Store with its own cluster (real redis-server) and its own blob
// store on one shared directory, each serving its registry (registry.New
// on the cache Store, anonymous pulls off) on a loopback server whose URL
// is its cluster.advertise.

type relayReplica struct {
	*replica
	srv *httptest.Server
}

func newRelayReplica(t *testing.T, name string, shared sharedStorage, redisAddr string, up Upstream) *relayReplica {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	advertise := "http://" + ln.Addr().String()
	bs := shared(t, nil)
	c := startCluster(t, cluster.Config{Name: name, Advertise: advertise, Redis: cluster.RedisConfig{Addresses: []string{redisAddr}}})
	cfg := &Config{CacheRules: []Rule{{Name: "mcr", SourceRepo: "mcr.microsoft.com/*", TargetRepo: "aks/*"}}}
	cfg.SetDefaults()
	cfg.UpstreamTimeout = 5 * time.Second
	s, err := New(cfg, Deps{Local: registry.NewLocalStore(bs), Blobs: bs, Upstream: up, Cluster: c, Logger: testLogger(t, name)})
	if err != nil {
		t.Fatal(err)
	}
	s.leaseTTL = testLeaseTTL
	no := false
	reg, err := registry.New(&registry.Config{AnonymousPull: &no}, registry.Deps{Store: s, PeerAuth: c.CheckPeerToken})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(reg.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { waitFillsFor(t, s, waitDeadline) }) // before the store closes
	t.Cleanup(srv.Close)
	return &relayReplica{replica: &replica{s: s, bs: bs, c: c}, srv: srv}
}

// progressRead reads d through s into a counter, checking the digest.
func progressRead(s *Store, repo string, d oci.Digest, n *atomic.Int64) error {
	r, size, err := s.OpenBlob(context.Background(), repo, d)
	if err != nil {
		return err
	}
	defer r.Close()
	if sr, ok := r.(interface{ StreamToEnd() }); ok {
		sr.StreamToEnd() // as the registry's whole-blob GET does
	}
	h := oci.NewVerifier(d)
	buf := make([]byte, 64<<10)
	var total int64
	for {
		k, err := r.Read(buf)
		h.Write(buf[:k])
		total += int64(k)
		n.Add(int64(k))
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", total, err)
		}
	}
	if total != size || !h.Verified() {
		return fmt.Errorf("%d bytes (size %d), verified %v", total, size, h.Verified())
	}
	return nil
}

func relayedCount(s *Store) int      { return leaseCount(s, "blob", leaseRelayed) }
func relayFailures(s *Store) float64 { return testutil.ToFloat64(s.m.relayFailures) }

// A client on B reads the first bytes of a cold blob while A's upstream
// still holds the rest back: B streams A's fill. One upstream GET.
func TestClusterRelayStreamsFromHolder(t *testing.T) {
	rd := redistest.Start(t)
	dir := onDir(t)
	up := newFake()
	content := random(4 << 20)
	d := up.addBlob(content)
	gate := make(chan struct{})
	up.gate = gate // the upstream sends half, then waits
	a := newRelayReplica(t, "a", dir, rd.Addr, up)
	b := newRelayReplica(t, "b", dir, rd.Addr, up)

	var aRead, bRead atomic.Int64
	aErr, bErr := make(chan error, 1), make(chan error, 1)
	go func() { aErr <- progressRead(a.s, "aks/x", d, &aRead) }()
	waitUntil(t, "A filling under the lease", func() bool {
		return up.blobGets.Load() == 1 && leaseCount(a.s, "blob", leaseHeld) == 1
	})
	go func() { bErr <- progressRead(b.s, "aks/x", d, &bRead) }()
	waitUntil(t, "B's client streaming A's fill before A has the whole blob", func() bool { return bRead.Load() >= 1<<20 })
	early := bRead.Load()
	if _, err := a.bs.Stat(d); err == nil {
		t.Fatal("blob stored while the upstream gate holds half of it")
	}
	close(gate)
	for _, ch := range []chan error{aErr, bErr} {
		if err := <-ch; err != nil {
			t.Error(err)
		}
	}
	if n := up.blobGets.Load(); n != 1 {
		t.Errorf("upstream blob GETs = %d, want 1", n)
	}
	waitUntil(t, "B's fill ended", func() bool { return !fillRegistered(b.s, d) })
	if n := relayedCount(b.s); n != 1 {
		t.Errorf("B relayed %d, want 1 (%s)", n, leaseSummary(a.replica, b.replica))
	}
	if _, err := b.bs.Stat(d); err != nil {
		t.Errorf("blob not stored after the fill: %v", err)
	}
	if err := getBlob(context.Background(), b.s, "aks/x", d); err != nil {
		t.Errorf("blob from storage: %v", err)
	}
	t.Logf("B's client read %d of %d bytes while A's upstream held the second half back; %d upstream GET", early, len(content), up.blobGets.Load())
}

// The holder dies mid-relay (its coordination stops without releasing,
// its registry drops the connections): B falls back, takes the lease over
// after the TTL, fetches the rest from its upstream, and its client gets
// the right bytes.
func TestClusterRelayHolderDiesMidRelay(t *testing.T) {
	rd := redistest.Start(t)
	dir := onDir(t)
	content := random(4 << 20)
	upA, upB := newFake(), newFake()
	d := upA.addBlob(content)
	upB.addBlob(content)
	gate := make(chan struct{})
	upA.gate = gate
	defer close(gate) // A's own fill ends after the test
	a := newRelayReplica(t, "a", dir, rd.Addr, upA)
	b := newRelayReplica(t, "b", dir, rd.Addr, upB)

	var aRead, bRead atomic.Int64
	go progressRead(a.s, "aks/x", d, &aRead)
	waitUntil(t, "A filling under the lease", func() bool {
		return upA.blobGets.Load() == 1 && leaseCount(a.s, "blob", leaseHeld) == 1
	})
	bErr := make(chan error, 1)
	go func() { bErr <- progressRead(b.s, "aks/x", d, &bRead) }()
	waitUntil(t, "B's client streaming A's fill", func() bool { return bRead.Load() >= 1<<20 })
	early := bRead.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := a.c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	a.srv.Listener.Close()
	a.srv.CloseClientConnections()
	select {
	case err := <-bErr:
		if err != nil {
			t.Fatalf("client on B after A died mid-relay: %v", err)
		}
	case <-time.After(waitDeadline):
		t.Fatalf("client on B not served %v after A died", waitDeadline)
	}
	if n := upB.blobGets.Load(); n != 1 {
		t.Errorf("B's upstream GETs = %d, want 1 (took over)", n)
	}
	if n := leaseCount(b.s, "blob", leaseTookOver); n != 1 {
		t.Errorf("B took over %d times, want 1 (%s)", n, leaseSummary(a.replica, b.replica))
	}
	if f := relayFailures(b.s); f != 1 {
		t.Errorf("B's relay failures = %v, want 1", f)
	}
	waitUntil(t, "B's fill ended", func() bool { return !fillRegistered(b.s, d) })
	if err := getBlob(context.Background(), b.s, "aks/x", d); err != nil {
		t.Errorf("blob stored by B: %v", err)
	}
	t.Logf("A died after B's client had %d bytes of the relay: B took over with %d upstream GET", early, upB.blobGets.Load())
}

// Peer requests: a blob the replica neither stores nor fills is 404 and
// starts no upstream fetch; a wrong token is refused.
func TestClusterRelayPeerRequests(t *testing.T) {
	rd := redistest.Start(t)
	up := newFake()
	d := up.addBlob(random(64 << 10))
	a := newRelayReplica(t, "a", onDir(t), rd.Addr, up)
	tok, err := a.c.PeerToken(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	get := func(token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, a.srv.URL+"/v2/aks/x/blobs/"+string(d), nil)
		req.Header.Set(storage.PeerHeader, token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(tok); code != http.StatusNotFound {
		t.Errorf("peer GET of a blob A does not have: %d, want 404", code)
	}
	if code := get("wrong" + tok); code != http.StatusUnauthorized {
		t.Errorf("GET with a wrong peer token: %d, want 401", code)
	}
	if n := up.blobGets.Load(); n != 0 {
		t.Errorf("upstream GETs after peer requests = %d, want 0", n)
	}
	// Stored (a client's pull): a peer request is served.
	if err := getBlob(context.Background(), a.s, "aks/x", d); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "fill ended", func() bool { return !fillRegistered(a.s, d) })
	if code := get(tok); code != http.StatusOK {
		t.Errorf("peer GET of a stored blob: %d, want 200", code)
	}
	if _, err := a.c.PeerToken(context.Background()); errors.Is(err, cluster.ErrUnavailable) {
		t.Error("peer token unavailable with redis up")
	}
}
