package dnsserver

import (
	"container/heap"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// Observations remembers which names airlock DNS answered with which
// addresses, each pair until its TTL plus the grace period has run out. The
// gateway matches FQDN network rules against NamesFor. Memory is bounded:
// beyond the cap, the pair that expires first is dropped. Safe for
// concurrent use.
//
// Shared (Share), the store also publishes its pairs to the other replicas
// through the cluster and asks them on a miss (LookupNames); see
// observe_share.go.
type Observations struct {
	mu      sync.Mutex
	max     int
	byAddr  map[netip.Addr]map[dnsname.Name]obsEntry
	n       int        // pairs in byAddr
	expiry  expiryHeap // may hold outdated items
	onCount func(int)
	sh      *sharing // nil: this replica only
}

// obsEntry is one (address, name) pair's state.
type obsEntry struct {
	exp time.Time // the pair counts before exp
	// pub is the expiry last queued for the cluster, or learnt from it
	// (zero: not shared yet).
	pub time.Time
}

// NewObservations returns an empty store holding at most max pairs (max ≤ 0:
// DefaultObservationEntries).
func NewObservations(max int) *Observations {
	if max <= 0 {
		max = DefaultObservationEntries
	}
	return &Observations{max: max, byAddr: map[netip.Addr]map[dnsname.Name]obsEntry{}}
}

// NamesFor returns the names addr was answered for that are still valid at
// now, sorted.
func (o *Observations) NamesFor(addr netip.Addr, now time.Time) []dnsname.Name {
	addr = addr.Unmap()
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []dnsname.Name
	for n, e := range o.byAddr[addr] {
		if now.Before(e.exp) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b dnsname.Name) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Record binds addr to each of names until expires (extending, never
// shortening, an existing binding), and drops what expired before now.
// Shared, a pair that is new or whose expiry moved forward by more than
// the sharing's slack is queued for the cluster (never waiting on it).
func (o *Observations) Record(addr netip.Addr, names []dnsname.Name, expires, now time.Time) {
	addr = addr.Unmap()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.expire(now)
	for _, n := range names {
		e, ok := o.lookup(addr, n)
		if ok && !expires.After(e.exp) {
			if e.pub.IsZero() && o.sh != nil && o.sh.queue(addr, n, e.exp) {
				e.pub = e.exp // not shared while Redis was away: now it is
				o.byAddr[addr][n] = e
			}
			continue
		}
		e.exp = expires
		if o.sh != nil && (e.pub.IsZero() || expires.Sub(e.pub) > o.sh.slack) && o.sh.queue(addr, n, expires) {
			e.pub = expires
		}
		o.bind(addr, n, e, !ok)
	}
	o.counted()
}

// lookup returns the entry of (addr, n). Callers hold mu.
func (o *Observations) lookup(addr netip.Addr, n dnsname.Name) (obsEntry, bool) {
	e, ok := o.byAddr[addr][n]
	return e, ok
}

// bind stores e, whose expiry is new or later, for (addr, n), then keeps
// the store within its cap. Callers hold mu.
func (o *Observations) bind(addr netip.Addr, n dnsname.Name, e obsEntry, added bool) {
	m := o.byAddr[addr]
	if m == nil {
		m = map[dnsname.Name]obsEntry{}
		o.byAddr[addr] = m
	}
	if added {
		o.n++
	}
	m[n] = e
	heap.Push(&o.expiry, expiryItem{addr: addr, name: n, at: e.exp})
	for o.n > o.max {
		o.dropFirst()
	}
}

// counted tidies the expiry heap and reports the count. Callers hold mu.
func (o *Observations) counted() {
	if len(o.expiry) > 2*o.max+16 {
		o.rebuild()
	}
	if o.onCount != nil {
		o.onCount(o.n)
	}
}

// Len returns the number of (address, name) pairs held.
func (o *Observations) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// expire drops every pair whose expiry is not after now.
func (o *Observations) expire(now time.Time) {
	for len(o.expiry) > 0 && !o.expiry[0].at.After(now) {
		o.dropFirst()
	}
}

// dropFirst removes the pair that expires first (skipping heap items an
// extension made outdated).
func (o *Observations) dropFirst() {
	for len(o.expiry) > 0 {
		it := heap.Pop(&o.expiry).(expiryItem)
		m := o.byAddr[it.addr]
		if e, ok := m[it.name]; ok && e.exp.Equal(it.at) {
			delete(m, it.name)
			if len(m) == 0 {
				delete(o.byAddr, it.addr)
			}
			o.n--
			return
		}
	}
}

// rebuild drops outdated heap items.
func (o *Observations) rebuild() {
	o.expiry = o.expiry[:0]
	for a, m := range o.byAddr {
		for n, e := range m {
			o.expiry = append(o.expiry, expiryItem{addr: a, name: n, at: e.exp})
		}
	}
	heap.Init(&o.expiry)
}

type expiryItem struct {
	addr netip.Addr
	name dnsname.Name
	at   time.Time
}

type expiryHeap []expiryItem

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryItem)) }
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
