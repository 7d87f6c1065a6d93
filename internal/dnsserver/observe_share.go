package dnsserver

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/airlockdev/airlock/internal/cluster"
	"github.com/airlockdev/airlock/internal/dnsname"
)

// Sharing observations across replicas. Each (address, name) pair this
// replica's DNS answers is added to the cluster set "obs:ADDRESS" (member:
// the name, expiry: the pair's) by one publisher goroutine, in pipelined
// batches, off the DNS path: Record only queues, never waits, and queues a
// pair only when it is new or its expiry moved forward by more than the
// slack, so a name answered 50k times a second costs a write per slack, not
// 50k. A gateway flow that this replica's observations do not allow asks
// the cluster (LookupNames) once per address per askAgainAfter; names found
// there are kept locally with their expiry (at most remoteMaxLife), so the
// next flows are decided locally. While Redis is away nothing waits on it:
// Record queues nothing, LookupNames answers at once, and the pairs
// recorded meanwhile are published when it is back.

// Timings and bounds; variables so tests can change them.
var (
	shareQueueLen   = 8192             // pairs waiting for the publisher
	shareBatch      = 512              // pairs per pipelined write
	shareCheckEvery = time.Second      // how often the publisher checks whether Redis is back
	askAgainAfter   = time.Second      // an address is asked about at most once per this
	remoteMaxLife   = time.Hour        // a pair learnt from the cluster is kept this long at most, then asked again
	remoteMaxNames  = 64               // names read for one address
	askedMax        = 1 << 16          // addresses remembered for askAgainAfter
	defaultSlack    = time.Second      // Observations.Share's slack when ShareDeps.Slack is zero
	maxSlack        = 30 * time.Second // Server.ShareObservations's slack at most
)

// obsKeyPrefix starts the cluster set key of an address.
const obsKeyPrefix = "obs:"

// Results of the metrics.
const (
	sharePublished   = "published"
	shareQueueFull   = "queue_full"
	shareUnavailable = "unavailable"
	lookupHit        = "hit"
	lookupMiss       = "miss"
	lookupThrottled  = "throttled"
	lookupError      = "error"
)

// Log keys of sharing.
const (
	keyAddr = "addr"
	keyBad  = "bad_members"
)

// ClusterSets is what sharing needs from the cluster (*cluster.Cluster).
type ClusterSets interface {
	AddToSets(ctx context.Context, adds []cluster.SetAdd) error
	SetMembers(ctx context.Context, key string, limit int) ([]cluster.SetMember, error)
	Degraded() (bool, string)
}

var _ ClusterSets = (*cluster.Cluster)(nil)

// ShareDeps are what sharing needs besides the cluster.
type ShareDeps struct {
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics not registered
	// Slack is how far a pair's expiry may move forward before it is
	// published again: the other replicas may see the pair end up to
	// Slack before this one does. Zero: 1 s (Server.ShareObservations
	// derives it from dns.observationGrace).
	Slack time.Duration
}

// Sharer runs the publisher of shared observations: Start it after the
// cluster, shut it down before.
type Sharer struct {
	sh     *sharing
	cancel context.CancelFunc
	done   chan struct{}
}

type sharing struct {
	o     *Observations
	cl    ClusterSets
	log   *slog.Logger
	m     *shareMetrics
	slack time.Duration
	up    atomic.Bool // Redis took the last write, or answered the last check
	q     chan pubItem
	// backlog: some live pairs are unpublished because the queue was full;
	// the next check queues them.
	backlog atomic.Bool

	flight  singleflight.Group
	askedMu sync.Mutex
	asked   map[netip.Addr]time.Time // when each address was last asked about
}

type pubItem struct {
	addr netip.Addr
	name dnsname.Name
	exp  time.Time
}

// ShareObservations shares the server's observations through cl (see
// Observations.Share), with a slack of a quarter of dns.observationGrace
// (between 1 s and 30 s), so a pair the other replicas see end early still
// outlives the TTL its clients were given.
func (s *Server) ShareObservations(cl ClusterSets, deps ShareDeps) *Sharer {
	if deps.Slack == 0 {
		deps.Slack = min(max(s.cfg.ObservationGrace/4, defaultSlack), maxSlack)
	}
	return s.obs.Share(cl, deps)
}

// Share makes o cluster-wide through cl: pairs recorded here are published
// to the other replicas (once the returned Sharer is started), and
// LookupNames asks them on a miss. Call it once, before serving. Call it
// only when the cluster has Redis: with none, nothing is shared.
func (o *Observations) Share(cl ClusterSets, deps ShareDeps) *Sharer {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	slack := deps.Slack
	if slack <= 0 {
		slack = defaultSlack
	}
	sh := &sharing{
		o: o, cl: cl, log: log, m: newShareMetrics(deps.Registerer), slack: slack,
		q: make(chan pubItem, shareQueueLen), asked: map[netip.Addr]time.Time{},
	}
	o.mu.Lock()
	o.sh = sh
	o.mu.Unlock()
	return &Sharer{sh: sh}
}

// Start starts the publisher. It never fails.
func (p *Sharer) Start(ctx context.Context) error {
	ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.done = make(chan struct{})
	go func() { defer close(p.done); p.sh.publishLoop(ctx) }()
	return nil
}

// Shutdown stops the publisher; pairs still queued are not published.
func (p *Sharer) Shutdown(ctx context.Context) error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Failed never delivers: losing Redis makes sharing pause, not fail.
func (p *Sharer) Failed() <-chan error { return nil }

// queue offers a pair to the publisher without waiting; false when Redis
// is away or the queue is full (counted), and the pair stays unpublished.
// Called with o.mu held.
func (sh *sharing) queue(addr netip.Addr, n dnsname.Name, exp time.Time) bool {
	if !sh.up.Load() {
		return false
	}
	select {
	case sh.q <- pubItem{addr: addr, name: n, exp: exp}:
		return true
	default:
		sh.m.shared.WithLabelValues(shareQueueFull).Inc()
		sh.backlog.Store(true)
		return false
	}
}

func (sh *sharing) publishLoop(ctx context.Context) {
	t := time.NewTicker(shareCheckEvery)
	defer t.Stop()
	sh.check()
	batch := make([]pubItem, 0, shareBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sh.check()
		case it := <-sh.q:
			batch = append(batch[:0], it)
		more:
			for len(batch) < shareBatch {
				select {
				case it := <-sh.q:
					batch = append(batch, it)
				default:
					break more
				}
			}
			sh.publish(ctx, batch)
		}
	}
}

// check follows the cluster's state; when Redis is back, the pairs
// recorded meanwhile are queued, and so are those a full queue refused.
func (sh *sharing) check() {
	if d, _ := sh.cl.Degraded(); d {
		sh.up.Store(false)
		return
	}
	if back := !sh.up.Swap(true); back || sh.backlog.Swap(false) {
		sh.o.queueUnpublished(time.Now())
	}
}

func (sh *sharing) publish(ctx context.Context, batch []pubItem) {
	adds := make([]cluster.SetAdd, len(batch))
	for i, it := range batch {
		adds[i] = cluster.SetAdd{Key: obsKey(it.addr), SetMember: cluster.SetMember{Member: it.name.String(), Expires: it.exp}}
	}
	err := sh.cl.AddToSets(ctx, adds)
	if err == nil {
		sh.m.shared.WithLabelValues(sharePublished).Add(float64(len(batch)))
		return
	}
	if ctx.Err() != nil {
		return
	}
	// Redis went away (the cluster logs that once): stop queueing until
	// it is back, and publish these then.
	sh.up.Store(false)
	sh.m.shared.WithLabelValues(shareUnavailable).Add(float64(len(batch)))
	sh.o.unpublish(batch)
}

// queueUnpublished queues the live pairs that were never published, as
// far as the queue has room.
func (o *Observations) queueUnpublished(now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	sh := o.sh
	for a, m := range o.byAddr {
		for n, e := range m {
			if !e.pub.IsZero() || !now.Before(e.exp) {
				continue
			}
			select {
			case sh.q <- pubItem{addr: a, name: n, exp: e.exp}:
				e.pub = e.exp
				m[n] = e
			default:
				sh.backlog.Store(true) // the rest at the next check
				return
			}
		}
	}
}

// unpublish marks pairs whose publication failed as not shared.
func (o *Observations) unpublish(batch []pubItem) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, it := range batch {
		if e, ok := o.byAddr[it.addr][it.name]; ok && e.pub.Equal(it.exp) {
			e.pub = time.Time{}
			o.byAddr[it.addr][it.name] = e
		}
	}
}

// LookupNames asks the other replicas which names their DNS answered with
// addr, for a flow this replica's observations (NamesFor) did not allow.
// Names found are kept locally with their expiry, and it returns every
// name valid for addr at now with true; false when nothing was learnt
// (nothing new there, the address was asked about within askAgainAfter,
// Redis is away, or o is not shared). Concurrent calls for one address
// share one read. It never fails: Redis trouble is a miss.
func (o *Observations) LookupNames(ctx context.Context, addr netip.Addr, now time.Time) ([]dnsname.Name, bool) {
	addr = addr.Unmap()
	o.mu.Lock()
	sh := o.sh
	o.mu.Unlock()
	if sh == nil {
		return nil, false
	}
	if !sh.mayAsk(addr, now) {
		sh.m.lookups.WithLabelValues(lookupThrottled).Inc()
		return nil, false
	}
	v, _, _ := sh.flight.Do(addr.String(), func() (any, error) {
		if !sh.mayAsk(addr, now) { // a read that ended since the check above
			sh.m.lookups.WithLabelValues(lookupThrottled).Inc()
			return false, nil
		}
		learnt := sh.ask(ctx, addr, now)
		sh.markAsked(addr, now)
		return learnt, nil
	})
	if !v.(bool) {
		return nil, false
	}
	return o.NamesFor(addr, now), true
}

// ask reads addr's set and keeps what is valid; true when it added or
// extended a pair.
func (sh *sharing) ask(ctx context.Context, addr netip.Addr, now time.Time) bool {
	ms, err := sh.cl.SetMembers(ctx, obsKey(addr), remoteMaxNames)
	switch {
	case errors.Is(err, cluster.ErrUnavailable):
		sh.m.lookups.WithLabelValues(shareUnavailable).Inc()
		return false
	case err != nil:
		sh.m.lookups.WithLabelValues(lookupError).Inc()
		return false
	}
	names, exps, bad := parseShared(ms, now, remoteMaxLife)
	if bad > 0 {
		sh.m.bad.Add(float64(bad))
		sh.log.Warn("observations in redis that are no host name or no expiry, skipped", keyAddr, addr.String(), keyBad, bad)
	}
	if !sh.o.learn(addr, names, exps, now) {
		sh.m.lookups.WithLabelValues(lookupMiss).Inc()
		return false
	}
	sh.m.lookups.WithLabelValues(lookupHit).Inc()
	return true
}

// learn binds addr to names[i] until exps[i] (never shortening), as
// learnt from the cluster (not published again); true when a pair was
// added or extended.
func (o *Observations) learn(addr netip.Addr, names []dnsname.Name, exps []time.Time, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.expire(now)
	changed := false
	for i, n := range names {
		e, ok := o.lookup(addr, n)
		if ok && !exps[i].After(e.exp) {
			continue
		}
		e.exp = exps[i]
		if e.exp.After(e.pub) {
			e.pub = e.exp // Redis holds it (until later): nothing to publish
		}
		o.bind(addr, n, e, !ok)
		changed = true
	}
	o.counted()
	return changed
}

// parseShared turns set members read from Redis (untrusted) into names
// and expiries: a member that is no host name or has no expiry is counted
// in bad and skipped; expired members are skipped; an expiry is cut to
// now+maxLife, after which the address is asked about again.
func parseShared(ms []cluster.SetMember, now time.Time, maxLife time.Duration) (names []dnsname.Name, exps []time.Time, bad int) {
	limit := now.Add(maxLife)
	for _, m := range ms {
		if m.Expires.IsZero() {
			bad++
			continue
		}
		if !m.Expires.After(now) {
			continue
		}
		n, err := dnsname.Parse(m.Member)
		if err != nil {
			bad++
			continue
		}
		exp := m.Expires
		if exp.After(limit) {
			exp = limit
		}
		names = append(names, n)
		exps = append(exps, exp)
	}
	return names, exps, bad
}

func (sh *sharing) mayAsk(addr netip.Addr, now time.Time) bool {
	sh.askedMu.Lock()
	defer sh.askedMu.Unlock()
	t, ok := sh.asked[addr]
	return !ok || now.Sub(t) >= askAgainAfter || now.Before(t)
}

func (sh *sharing) markAsked(addr netip.Addr, now time.Time) {
	sh.askedMu.Lock()
	defer sh.askedMu.Unlock()
	if len(sh.asked) >= askedMax {
		for a, t := range sh.asked {
			if now.Sub(t) >= askAgainAfter || now.Before(t) {
				delete(sh.asked, a)
			}
		}
		if len(sh.asked) >= askedMax {
			clear(sh.asked)
		}
	}
	sh.asked[addr] = now
}

func obsKey(addr netip.Addr) string { return obsKeyPrefix + addr.String() }
