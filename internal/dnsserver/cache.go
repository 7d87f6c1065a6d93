package dnsserver

import (
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Cache limits (Azure Firewall's DNS proxy: positive answers at most 1 h,
// negative at most 30 min).
const (
	maxPositiveTTL = time.Hour
	maxNegativeTTL = 30 * time.Minute
	// staleTTL is the TTL of a stale answer (RFC 8767 §4 recommends 30 s).
	staleTTL = 30
)

type cacheKey struct {
	name  string // normalized, no trailing dot
	qtype uint16
}

// cacheEntry is an upstream answer as received, packed (wire format);
// never mutated once stored. Packed, an answer is one block of bytes the
// garbage collector marks without scanning: as a dns.Msg it was a tree of
// about ten pointer-holding objects, and at 100,000 entries those trees
// were most of the live heap, which every GC cycle walks (on one core the
// runtime's mark worker then took the CPU in bursts of 10–20 ms; see
// docs/dns.md "Performance and cores").
type cacheEntry struct {
	pkt     []byte
	stored  time.Time
	expires time.Time
}

// answerCache holds raw upstream answers (before any policy filtering, which
// depends on the client and is redone for every query). Safe for concurrent
// use.
type answerCache struct {
	mu       sync.Mutex
	m        fifoMap[cacheKey, cacheEntry]
	staleFor time.Duration
}

func newAnswerCache(max int, staleFor time.Duration) *answerCache {
	return &answerCache{m: newFIFOMap[cacheKey, cacheEntry](max), staleFor: staleFor}
}

// cacheHit says which cache entry a fresh answer came from and how much
// its TTLs were lowered: the fast path counts them down from there.
type cacheHit struct {
	stored, expires time.Time
	age             uint32 // whole seconds since stored, at the hit
}

// entry returns k's entry, unpacked, when there is one.
func (c *answerCache) entry(k cacheKey) (*dns.Msg, cacheEntry, bool) {
	c.mu.Lock()
	e, ok := c.m.get(k)
	c.mu.Unlock()
	if !ok {
		return nil, cacheEntry{}, false
	}
	m := new(dns.Msg)
	if err := m.Unpack(e.pkt); err != nil {
		return nil, cacheEntry{}, false // packed by put: does not happen
	}
	return m, e, true
}

// get returns a copy of the cached answer when it is fresh at now, its TTLs
// lowered by its age and never beyond the time left in the cache; fresh is
// false (and msg nil) otherwise.
//
// A TTL served at any time t while the entry is fresh is therefore
// max(0, min(ttl, T) − age(t)), T being the entry's lifetime in whole
// seconds (cacheTTL) and age(t) the whole seconds since stored: the time
// left, ceil(T − (t − stored)), equals T − age(t).
func (c *answerCache) get(k cacheKey, now time.Time) (msg *dns.Msg, hit cacheHit, fresh bool) {
	c.mu.Lock()
	e, ok := c.m.get(k)
	c.mu.Unlock()
	if !ok || !now.Before(e.expires) {
		return nil, cacheHit{}, false
	}
	m := new(dns.Msg)
	if err := m.Unpack(e.pkt); err != nil {
		return nil, cacheHit{}, false // packed by put: does not happen
	}
	age := uint32(now.Sub(e.stored) / time.Second)
	left := uint32((e.expires.Sub(now) + time.Second - 1) / time.Second)
	for _, rr := range allRRs(m) {
		h := rr.Header()
		if h.Ttl > age {
			h.Ttl -= age
		} else {
			h.Ttl = 0
		}
		h.Ttl = min(h.Ttl, left)
	}
	return m, cacheHit{stored: e.stored, expires: e.expires, age: age}, true
}

// stale returns a copy of an expired answer with TTL staleTTL when it
// expired no more than staleFor before now.
func (c *answerCache) stale(k cacheKey, now time.Time) *dns.Msg {
	m, e, ok := c.entry(k)
	if !ok || now.After(e.expires.Add(c.staleFor)) {
		return nil
	}
	for _, rr := range allRRs(m) {
		rr.Header().Ttl = min(rr.Header().Ttl, staleTTL)
	}
	return m
}

// put stores an upstream answer when it is cacheable. A full cache drops
// its oldest entry (and up to two more past their stale window): constant
// work per insert, never a pass over the cache.
func (c *answerCache) put(k cacheKey, m *dns.Msg, now time.Time) {
	ttl, ok := cacheTTL(m)
	if !ok || c.m.max <= 0 {
		return
	}
	packed := *m // a shallow copy: Pack does not change m
	packed.Compress = true
	pkt, err := packed.Pack()
	if err != nil {
		return // not cached; the answer still goes to the client
	}
	e := cacheEntry{pkt: pkt, stored: now, expires: now.Add(ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.put(k, e, func(old cacheEntry) bool { return now.After(old.expires.Add(c.staleFor)) })
}

func (c *answerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m.len()
}

// fifoMap is a map bounded to max entries that forgets its oldest entry
// (first stored; storing a key again makes it the newest) to make room:
// each insert does constant work. Both answer caches use it; their old
// eviction, a pass over the whole map every tenth of the bound, held the
// cache's lock (and, on one core, the CPU) for 10–20 ms at 100,000 entries.
// Not safe for concurrent use.
type fifoMap[K comparable, V any] struct {
	m              map[K]*fifoNode[K, V]
	oldest, newest *fifoNode[K, V]
	max            int
	dropped        int // entries dropped to make room, for tests
}

type fifoNode[K comparable, V any] struct {
	k            K
	v            V
	older, newer *fifoNode[K, V]
}

// fifoExtraDrops is how many entries past their use an insert drops from
// the old end besides the one the bound requires: expired entries leave
// faster than inserts arrive, at constant work per insert.
const fifoExtraDrops = 2

func newFIFOMap[K comparable, V any](max int) fifoMap[K, V] {
	return fifoMap[K, V]{m: map[K]*fifoNode[K, V]{}, max: max}
}

func (f *fifoMap[K, V]) get(k K) (V, bool) {
	if n := f.m[k]; n != nil {
		return n.v, true
	}
	var zero V
	return zero, false
}

func (f *fifoMap[K, V]) len() int { return len(f.m) }

// put stores v under k as the newest entry. Then, while the map is above
// its bound, the oldest entry goes; and up to fifoExtraDrops oldest entries
// for which gone is true go too (gone may be nil).
func (f *fifoMap[K, V]) put(k K, v V, gone func(V) bool) {
	if f.max <= 0 {
		return
	}
	if n := f.m[k]; n != nil {
		f.unlink(n)
		n.v = v
		f.link(n)
	} else {
		n := &fifoNode[K, V]{k: k, v: v}
		f.m[k] = n
		f.link(n)
	}
	for len(f.m) > f.max {
		f.dropped++
		f.remove(f.oldest)
	}
	for i := 0; i < fifoExtraDrops && gone != nil && f.oldest != nil && f.oldest != f.newest && gone(f.oldest.v); i++ {
		f.dropped++
		f.remove(f.oldest)
	}
}

// deleteIf removes k's entry when match is true for its value.
func (f *fifoMap[K, V]) deleteIf(k K, match func(V) bool) {
	if n := f.m[k]; n != nil && match(n.v) {
		f.remove(n)
	}
}

func (f *fifoMap[K, V]) clear() {
	clear(f.m)
	f.oldest, f.newest = nil, nil
}

func (f *fifoMap[K, V]) remove(n *fifoNode[K, V]) {
	f.unlink(n)
	delete(f.m, n.k)
}

// link appends n as the newest node.
func (f *fifoMap[K, V]) link(n *fifoNode[K, V]) {
	n.older, n.newer = f.newest, nil
	if f.newest != nil {
		f.newest.newer = n
	} else {
		f.oldest = n
	}
	f.newest = n
}

func (f *fifoMap[K, V]) unlink(n *fifoNode[K, V]) {
	if n.older != nil {
		n.older.newer = n.newer
	} else {
		f.oldest = n.newer
	}
	if n.newer != nil {
		n.newer.older = n.older
	} else {
		f.newest = n.older
	}
	n.older, n.newer = nil, nil
}

// cacheTTL returns how long an upstream answer may be cached: the smallest
// answer TTL capped at 1 h for a positive answer; for NXDOMAIN and NODATA
// the SOA's min(TTL, minimum) capped at 30 min (RFC 2308 §5; no SOA: not
// cached). Other rcodes are not cached.
func cacheTTL(m *dns.Msg) (time.Duration, bool) {
	switch {
	case m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0:
		ttl := m.Answer[0].Header().Ttl
		for _, rr := range m.Answer[1:] {
			ttl = min(ttl, rr.Header().Ttl)
		}
		return min(time.Duration(ttl)*time.Second, maxPositiveTTL), true
	case m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError:
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl := min(soa.Hdr.Ttl, soa.Minttl)
				return min(time.Duration(ttl)*time.Second, maxNegativeTTL), true
			}
		}
	}
	return 0, false
}

func allRRs(m *dns.Msg) []dns.RR {
	rrs := make([]dns.RR, 0, len(m.Answer)+len(m.Ns)+len(m.Extra))
	rrs = append(rrs, m.Answer...)
	rrs = append(rrs, m.Ns...)
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			rrs = append(rrs, rr)
		}
	}
	return rrs
}
