package cache

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/airlockdev/airlock/internal/cluster"
	"github.com/airlockdev/airlock/internal/oci"
)

// Coordination of fills across replicas (see docs/cluster.md, "Cache fills
// across replicas"). With a cluster every upstream fetch — a blob fill, a
// manifest by digest, a tag revalidation — runs under a lease named after
// what it fetches, so at most one replica asks the upstream for it at a
// time. A replica that finds the lease busy waits for the holder to finish
// and then reads the shared storage; when the content is not there (the
// holder failed, or died and its lease expired), it tries the lease again
// and fetches itself. While Redis is unreachable the leases are
// process-local: at most one fetch per replica. Without a cluster nothing
// here runs: the in-process coalescing alone applies.

// Lease timings.
const (
	// DefaultFillLeaseTTL is how long a fill's lease outlives a holder that
	// stopped renewing it (died, or lost Redis): then another replica takes
	// over. The cluster renews it every third of that while the fill runs.
	DefaultFillLeaseTTL = 15 * time.Second
	// sizeWaitBound bounds each wait for another replica's blob fill while
	// this replica does not know the blob's size yet: it then looks for the
	// holder's size record again (a HEAD can answer as soon as it is there).
	sizeWaitBound = time.Second
	// relayPollBound is that bound while a relay is possible: the holder's
	// URL is looked for this often until the holder's upstream answered.
	relayPollBound = 200 * time.Millisecond
	// fillSizeTTL is how long a holder's size record lives.
	fillSizeTTL = 10 * time.Minute
	// quotaLeaseTTL is the lease of one quota eviction run (renewed while
	// it runs).
	quotaLeaseTTL = 30 * time.Second
	// quotaJob is the name of the singleton quota job and its run lease.
	quotaJob = "cache-quota"
)

// Results of taking a fill lease (airlock_cache_fill_leases_total).
const (
	leaseHeld     = "held"      // this replica fetches, under a cluster-wide lease
	leaseLocal    = "local"     // this replica fetches under a process-local lease (Redis unreachable)
	leaseWaited   = "waited"    // another replica fetched it; served from the shared storage
	leaseTookOver = "took_over" // waited for another replica, found nothing stored, fetched it here
	leaseNone     = "none"      // gave up waiting (the wait's deadline): fetched without a lease
	leaseRelayed  = "relayed"   // another replica fetched it; streamed from that replica while it did
)

// Log messages.
const (
	msgWaitFill     = "waiting for another replica's upstream fetch"
	msgTakeOverFill = "another replica's upstream fetch ended without the content: fetching it here"
	msgLostLease    = "lost the fill lease (redis unreachable or the lease expired); the fetch continues: content is addressed by digest"
)

func blobLeaseKey(d oci.Digest) string { return "fill:blob:" + string(d) }
func blobSizeKey(d oci.Digest) string  { return "fill:blobsize:" + string(d) }
func manifestLeaseKey(repo string, ref oci.Reference) string {
	return "fill:manifest:" + repo + "@" + ref.String()
}

// leaseWait describes one coordinated fetch.
type leaseWait struct {
	kind string // blob | manifest (metric label)
	key  string
	// ready reports whether the content is in the shared storage now
	// (another replica fetched it).
	ready func() bool
	// beforeWait, when set, runs before each wait; it returns how long
	// that wait may last (0: until the lease is free).
	beforeWait func() time.Duration
	// busy, when set, runs each time the lease is found busy, before the
	// wait (a blob fill streams from the holder there). True: the fetch
	// is over for good (failed): stop waiting.
	busy func(ctx context.Context) bool
	// relayed, when set, reports whether the content came from the
	// holder while it fetched (result relayed rather than waited).
	relayed func() bool
}

// waitedResult is the result of a wait that found the content stored.
func (w leaseWait) waitedResult() string {
	if w.relayed != nil && w.relayed() {
		return leaseRelayed
	}
	return leaseWaited
}

// coordinate takes w's lease, waiting while another replica holds it.
// It returns ready true (and no release) when the content appeared in the
// shared storage — fetched by another replica — and otherwise a release
// func to call when this replica's fetch has ended (committed or failed).
// The lease is held until then; losing it (Redis gone past the TTL) is
// logged and counted, and the fetch goes on. When ctx ends while waiting
// the fetch goes ahead without a lease: waiting never turns into an
// outage. Without a cluster: no lease, release is a no-op.
func (s *Store) coordinate(ctx context.Context, w leaseWait) (release func(), ready bool) {
	if s.cluster == nil {
		return func() {}, false
	}
	waited := false
	for {
		l, ok, err := s.cluster.TryLease(ctx, w.key, s.leaseTTL)
		switch {
		case err != nil && ctx.Err() == nil:
			// A bad argument: never expected. Fetch uncoordinated.
			s.log.Error("cache fill lease", "key", w.key, "err", err)
			s.m.fillLeases.WithLabelValues(w.kind, leaseNone).Inc()
			return func() {}, false
		case err != nil:
			return s.gaveUp(w, ctx.Err())
		case ok:
			// The holder before us commits before it releases: look
			// once more, or we would fetch what it has just stored.
			if w.ready() {
				l.Release()
				s.m.fillLeases.WithLabelValues(w.kind, w.waitedResult()).Inc()
				return nil, true
			}
			result := leaseHeld
			switch {
			case waited:
				result = leaseTookOver
				s.log.Info(msgTakeOverFill, "kind", w.kind, "key", w.key, "local_lease", l.Local())
			case l.Local():
				result = leaseLocal
			}
			s.m.fillLeases.WithLabelValues(w.kind, result).Inc()
			return s.watchLease(l, w), false
		}
		if !waited {
			s.log.Debug(msgWaitFill, "kind", w.kind, "key", w.key)
		}
		waited = true
		if w.busy != nil && w.busy(ctx) {
			return nil, true
		}
		var bound time.Duration
		if w.beforeWait != nil {
			bound = w.beforeWait()
		}
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if bound > 0 {
			wctx, cancel = context.WithTimeout(ctx, bound)
		}
		err = s.cluster.WaitLease(wctx, w.key)
		cancel()
		if ctx.Err() != nil {
			return s.gaveUp(w, ctx.Err())
		}
		if w.ready() {
			s.m.fillLeases.WithLabelValues(w.kind, w.waitedResult()).Inc()
			return nil, true
		}
		_ = err // a bounded wait that timed out: look and try again
	}
}

// gaveUp is coordinate's answer when its context ended while waiting:
// fetch without a lease rather than fail the clients.
func (s *Store) gaveUp(w leaseWait, err error) (func(), bool) {
	s.log.Warn("gave up waiting for another replica's upstream fetch: fetching without a lease", "kind", w.kind, "key", w.key, "err", err)
	s.m.fillLeases.WithLabelValues(w.kind, leaseNone).Inc()
	return func() {}, false
}

// watchLease logs and counts the loss of a held lease until the returned
// release is called, which gives the lease up.
func (s *Store) watchLease(l *cluster.Lease, w leaseWait) func() {
	stop := make(chan struct{})
	go func() {
		select {
		case <-l.Lost():
			s.m.fillLeaseLost.WithLabelValues(w.kind).Inc()
			s.log.Warn(msgLostLease, "kind", w.kind, "key", w.key)
		case <-stop:
		}
	}()
	return func() {
		close(stop)
		l.Release()
	}
}

// blobWait is the coordination of f's fill. While the size is unknown,
// each wait is bounded so that the holder's size record is looked for
// again; once known, HEAD requests waiting on f are answered with it.
// With relays on, a busy lease makes f stream from the holder into *w
// (relay.go), once per holder URL.
func (s *Store) blobWait(f *fill, w *fillWriter) leaseWait {
	relayOn := s.relayOn()
	var (
		tried     string // the last holder URL relayed from
		checkedAt bool   // busy looked for the holder's URL with the size known
	)
	lw := leaseWait{
		kind: "blob",
		key:  blobLeaseKey(f.d),
		ready: func() bool {
			_, err := s.blobs.Stat(f.d)
			return err == nil
		},
		beforeWait: func() time.Duration {
			if f.knownSize() < 0 {
				ctx, cancel := context.WithTimeout(context.Background(), sizeWaitBound)
				b, ok, err := s.cluster.Get(ctx, blobSizeKey(f.d))
				cancel()
				if err == nil && ok {
					if n, err := strconv.ParseInt(string(b), 10, 64); err == nil && n >= 0 {
						f.setSize(n)
					}
				}
			}
			known := f.knownSize() >= 0
			if relayOn && !checkedAt && !f.isVerified() {
				// The holder publishes its URL just before the size: once
				// the size is known, look for the URL again at once.
				if known {
					return time.Millisecond
				}
				return relayPollBound
			}
			if known {
				return 0
			}
			return sizeWaitBound
		},
	}
	if !relayOn {
		return lw
	}
	lw.busy = func(ctx context.Context) bool {
		if f.isVerified() {
			return false // relayed: wait for the holder to store it
		}
		checkedAt = checkedAt || f.knownSize() >= 0
		peer := s.holderURL(f.d)
		if peer == "" || peer == tried {
			return false
		}
		tried = peer
		over := s.relay(ctx, f, w, peer)
		return over && !f.isVerified()
	}
	lw.relayed = f.isVerified
	return lw
}

// publishSize tells the other replicas the size of the blob this replica
// fills (their HEAD requests answer with it). Best effort.
func (s *Store) publishSize(d oci.Digest, size int64) {
	if s.cluster == nil || size < 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sizeWaitBound)
	defer cancel()
	if err := s.cluster.Put(ctx, blobSizeKey(d), []byte(strconv.FormatInt(size, 10)), fillSizeTTL); err != nil && !errors.Is(err, cluster.ErrUnavailable) {
		s.log.Debug("publish fill size", "digest", d, "err", err)
	}
}

// manifestWaitCtx bounds a manifest fetch's wait for another replica:
// the holder's own fetch is bounded by the upstream timeout, and a holder
// that died is replaced after the lease TTL.
func (s *Store) manifestWaitCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 2*s.timeout+2*s.leaseTTL)
}

// runQuota enforces the quota under the cluster-wide run lease, so that
// one replica at a time evicts. A busy lease means another replica is
// evicting right now: nothing to do. The run stops when the lease is lost.
func (s *Store) runQuota(ctx context.Context) {
	if s.cluster == nil {
		s.enforceQuota(ctx)
		return
	}
	l, ok, err := s.cluster.TryLease(ctx, "run:"+quotaJob, quotaLeaseTTL)
	if err != nil || !ok {
		if err != nil && ctx.Err() == nil {
			s.log.Warn("quota: run lease", "err", err)
		}
		return
	}
	defer l.Release()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-l.Lost():
			s.log.Warn("quota: lost the run lease; stopping this eviction run", slog.String("job", quotaJob))
			cancel()
		case <-rctx.Done():
		}
	}()
	s.enforceQuota(rctx)
}
