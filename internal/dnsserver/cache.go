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

// cacheEntry is an upstream answer as received; never mutated once stored.
type cacheEntry struct {
	msg     *dns.Msg
	stored  time.Time
	expires time.Time
}

// answerCache holds raw upstream answers (before any policy filtering, which
// depends on the client and is redone for every query). Safe for concurrent
// use.
type answerCache struct {
	mu       sync.Mutex
	m        map[cacheKey]*cacheEntry
	max      int
	staleFor time.Duration
	scans    int // evict passes over the map, for tests
}

func newAnswerCache(max int, staleFor time.Duration) *answerCache {
	return &answerCache{m: map[cacheKey]*cacheEntry{}, max: max, staleFor: staleFor}
}

// cacheHit says which cache entry a fresh answer came from and how much
// its TTLs were lowered: the fast path counts them down from there.
type cacheHit struct {
	stored, expires time.Time
	age             uint32 // whole seconds since stored, at the hit
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
	e := c.m[k]
	c.mu.Unlock()
	if e == nil || !now.Before(e.expires) {
		return nil, cacheHit{}, false
	}
	age := uint32(now.Sub(e.stored) / time.Second)
	left := uint32((e.expires.Sub(now) + time.Second - 1) / time.Second)
	m := e.msg.Copy()
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
	c.mu.Lock()
	e := c.m[k]
	c.mu.Unlock()
	if e == nil || now.After(e.expires.Add(c.staleFor)) {
		return nil
	}
	m := e.msg.Copy()
	for _, rr := range allRRs(m) {
		rr.Header().Ttl = min(rr.Header().Ttl, staleTTL)
	}
	return m
}

// put stores an upstream answer when it is cacheable.
func (c *answerCache) put(k cacheKey, m *dns.Msg, now time.Time) {
	ttl, ok := cacheTTL(m)
	if !ok || c.max <= 0 {
		return
	}
	e := &cacheEntry{msg: m, stored: now, expires: now.Add(ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, present := c.m[k]; !present && len(c.m) >= c.max {
		c.evict(now)
	}
	c.m[k] = e
}

// evict makes room in bulk: every entry past its stale window goes, and
// if the cache is still above 90% of its bound, arbitrary entries (Go's map
// order) go until it is not. Each pass over the map thus frees at least a
// tenth of the cache, so its cost is shared by that many inserts instead of
// being paid by every insert of a full cache. Called with mu held.
func (c *answerCache) evict(now time.Time) {
	c.scans++
	evictTenth(c.m, c.max, func(e *cacheEntry) bool { return now.After(e.expires.Add(c.staleFor)) })
}

// evictTenth makes room in a full map bounded by limit: it drops each
// entry for which gone is true, then arbitrary entries (Go's map order) until
// at most 90% of limit remain, so one pass pays for a tenth of the inserts
// to come. Both answer caches use it.
func evictTenth[K comparable, V any](m map[K]V, limit int, gone func(V) bool) {
	for k, v := range m {
		if gone(v) {
			delete(m, k)
		}
	}
	target := limit - max(limit/10, 1)
	for k := range m {
		if len(m) <= target {
			return
		}
		delete(m, k)
	}
}

func (c *answerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
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
