package dnsserver

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/policy"
)

// fastEntry is one UDP answer the full path produced from a fresh cache
// entry, packed, with what replaying it needs: where its TTLs are, the
// policy it was decided under, its decision (counted and logged again at
// every replay) and the addresses it recorded in Observations (recorded
// again, before the answer leaves). Never mutated once stored.
type fastEntry struct {
	pkt     []byte // the packed answer; bytes 0–1 (the ID) are patched
	ttls    []ttlSlot
	stored  time.Time // the answer cache entry's: ages count from here
	expires time.Time // the answer cache entry's: replayed only before
	pol     *policySnap
	queries prometheus.Counter // Queries for the decision's labels

	obsAddrs []netip.Addr
	obsBase  []uint32 // each address's TTL base, as ttls
	names    []dnsname.Name

	// The decision record's fields.
	qname    string
	qtype    uint16
	decision policy.Decision
	// wouldDeny: a report-mode answer to a name the policy denied; its
	// record is always logged.
	wouldDeny bool
	decided   string
	rcode     int
	answers   int
	stripped  []string
}

// fastCache maps fastKey keys to answers. Bounded like the answer cache
// (the oldest entry goes first). Safe for concurrent use: the UDP reader
// looks up, full-path queries store.
type fastCache struct {
	mu sync.RWMutex
	m  fifoMap[string, *fastEntry]
}

func newFastCache(max int) *fastCache {
	return &fastCache{m: newFIFOMap[string, *fastEntry](max)}
}

func (c *fastCache) get(key []byte) *fastEntry {
	c.mu.RLock()
	n := c.m.m[string(key)] // indexed directly: no string allocated
	c.mu.RUnlock()
	if n == nil {
		return nil
	}
	return n.v
}

func (c *fastCache) put(key []byte, e *fastEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.put(string(key), e, func(old *fastEntry) bool { return !now.Before(old.expires) })
}

// drop removes key's entry if it is still e.
func (c *fastCache) drop(key []byte, e *fastEntry) {
	c.mu.Lock()
	c.m.deleteIf(string(key), func(old *fastEntry) bool { return old == e })
	c.mu.Unlock()
}

func (c *fastCache) clear() {
	c.mu.Lock()
	c.m.clear()
	c.mu.Unlock()
}

func (c *fastCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m.len()
}

// remember stores the answer pkt to the UDP query whose fastKey is key,
// when it may be replayed: an allowed answer built from a fresh cache entry
// (not stale, not from a private zone, whose TTLs do not count down), not
// truncated.
func (s *Server) remember(key []byte, rec *record, resp *dns.Msg, pkt []byte) {
	if key == nil || rec.cache != "hit" || rec.err != nil || rec.zoneTail || !(rec.decision.Allowed() || rec.wouldDeny) || resp.Truncated {
		return
	}
	slots, ok := ttlSlots(pkt, rec.hit.age)
	if !ok {
		return
	}
	e := &fastEntry{
		pkt:       append([]byte(nil), pkt...),
		ttls:      slots,
		stored:    rec.hit.stored,
		expires:   rec.hit.expires,
		pol:       rec.pol,
		queries:   s.metrics.Queries.WithLabelValues(string(rec.decision.Verdict), string(rec.decision.Reason)),
		qname:     rec.qname,
		qtype:     rec.qtype,
		decision:  rec.decision,
		wouldDeny: rec.wouldDeny,
		decided:   rec.decided,
		rcode:     rec.rcode,
		answers:   rec.answers,
		stripped:  rec.stripped,
	}
	for _, rr := range resp.Answer {
		if a, ok := addrOf(rr); ok {
			e.obsAddrs = append(e.obsAddrs, a)
			e.obsBase = append(e.obsBase, rr.Header().Ttl+rec.hit.age)
		}
	}
	if len(e.obsAddrs) > 0 {
		e.names = chainNames(resp)
	}
	s.fast.put(key, e, s.now())
}

// replay writes into out the answer to the UDP query pkt (whose fastKey is
// key) from src when the fast path holds a valid one, doing what the full
// path would: the decision is counted (and logged per logAllowed), the
// addresses are recorded in Observations, TTLs are counted down. It
// returns the answer (a slice of out) or nil: then the query takes the
// full path.
func (s *Server) replay(out []byte, key []byte, src netip.Addr, pkt []byte) []byte {
	e := s.fast.get(key)
	if e == nil {
		return nil
	}
	now := s.now()
	if !now.Before(e.expires) || e.pol != s.policy.Load() {
		s.fast.drop(key, e)
		return nil
	}
	age := uint32(now.Sub(e.stored) / time.Second)
	grace := s.cfg.ObservationGrace
	for i, a := range e.obsAddrs {
		// The client may use the address until now + TTL, which is before
		// stored + base + 1 s whatever the second now falls in: recording
		// that bound (the same at every replay) extends nothing after the
		// first replay, where recording now + TTL would move the expiry,
		// and push on the expiry heap, at every query.
		exp := e.stored.Add(time.Duration(e.obsBase[i])*time.Second + time.Second + grace)
		ttl := time.Duration(e.obsBase[i]-min(age, e.obsBase[i])) * time.Second
		if alt := now.Add(ttl + grace); alt.After(exp) {
			exp = alt
		}
		s.obs.Record(a, e.names, exp, now)
	}
	out = append(out[:0], e.pkt...)
	out[0], out[1] = pkt[0], pkt[1]
	for _, t := range e.ttls {
		binary.BigEndian.PutUint32(out[t.off:], t.base-min(age, t.base))
	}
	s.metrics.CacheHits.Inc()
	e.queries.Inc()
	s.hits.Count(hitsComponent, e.decision, now)
	if s.cfg.LogAllowed != LogNone || e.wouldDeny {
		s.logRecord(&record{src: src, qname: e.qname, qtype: e.qtype, decision: e.decision, wouldDeny: e.wouldDeny,
			decided: e.decided, rcode: e.rcode, answers: e.answers, stripped: e.stripped, cache: "hit"}, time.Now())
	}
	return out
}
