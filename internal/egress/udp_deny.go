package egress

import (
	"net/netip"
	"time"
)

// Denied UDP flows. A denied flow holds no slot of the flow table; two
// bounded memories, each kept for gateway.udpDenyTimeout, stand in:
//
//   - the flow itself (client address and port, destination), so its
//     retries are dropped without deciding again. Keyed by the flow, not
//     the client address: a decision can change (an FQDN network rule
//     matches once airlock DNS answered the name, a reload), and a new
//     flow is decided afresh;
//   - the client address and destination of each deny record written, so
//     a client that sends from many source ports to one denied
//     destination gets one record per udpDenyTimeout, not one per port;
//     and a client gets at most udpMaxFlowsPerSource records per
//     udpDenyTimeout on a listener, whatever it sprays. Denies not
//     recorded are counted (dropped, why denied).
//
// Both hold at most gateway.udpMaxFlows entries, the oldest forgotten
// first; forgetting costs a decision or a record again, never a flow.

// udpMemory remembers keys until their time is up. Keys are added in the
// order of their expiry (one timeout for all), so expired and oldest keys
// are both at the head of order. Not safe for concurrent use.
type udpMemory[K comparable] struct {
	until map[K]time.Time
	order []udpMemoryEntry[K] // from head on
	head  int
	// forgot, when set, is called for each key forgotten.
	forgot func(K)
}

type udpMemoryEntry[K comparable] struct {
	key   K
	until time.Time
}

// has says whether k is remembered at now.
func (m *udpMemory[K]) has(k K, now time.Time) bool {
	until, ok := m.until[k]
	if ok && !now.Before(until) {
		m.forget(k)
		ok = false
	}
	return ok
}

func (m *udpMemory[K]) forget(k K) {
	delete(m.until, k)
	if m.forgot != nil {
		m.forgot(k)
	}
}

// prune forgets the keys expired at now and then the oldest ones until
// fewer than max are left.
func (m *udpMemory[K]) prune(now time.Time, max int) {
	for m.head < len(m.order) {
		e := m.order[m.head]
		if len(m.until) < max && now.Before(e.until) {
			break
		}
		if until, ok := m.until[e.key]; ok && until == e.until { // not stale
			m.forget(e.key)
		}
		m.order[m.head] = udpMemoryEntry[K]{}
		m.head++
	}
	if m.head > 64 && m.head > len(m.order)/2 {
		m.order = append(m.order[:0], m.order[m.head:]...)
		m.head = 0
	}
}

// add remembers k (not remembered now) from now for ttl, in at most max
// entries.
func (m *udpMemory[K]) add(k K, now time.Time, ttl time.Duration, max int) {
	m.prune(now, max)
	if max <= 0 {
		return
	}
	if m.until == nil {
		m.until = make(map[K]time.Time)
	}
	until := now.Add(ttl)
	m.until[k] = until
	m.order = append(m.order, udpMemoryEntry[K]{k, until})
}

// udpDenyKey is a client address and a destination.
type udpDenyKey struct {
	src netip.Addr
	dst netip.AddrPort
}

// udpDenyRecords is the memory of the deny records written lately, with
// how many each client address holds.
type udpDenyRecords struct {
	mem    udpMemory[udpDenyKey]
	perSrc map[netip.Addr]int
}

// record says whether the deny of flow k at now gets a record, and if so
// remembers it: not when the client address and destination got one
// within ttl, nor when the client address holds perSource remembered
// records.
func (r *udpDenyRecords) record(k udpKey, now time.Time, ttl time.Duration, max, perSource int) bool {
	if r.perSrc == nil {
		r.perSrc = make(map[netip.Addr]int)
		r.mem.forgot = func(dk udpDenyKey) {
			if r.perSrc[dk.src]--; r.perSrc[dk.src] <= 0 {
				delete(r.perSrc, dk.src)
			}
		}
	}
	dk := udpDenyKey{k.src.Addr(), k.dst}
	if r.mem.has(dk, now) {
		return false
	}
	r.mem.prune(now, max)
	if r.perSrc[dk.src] >= perSource {
		return false
	}
	r.mem.add(dk, now, ttl, max)
	if _, ok := r.mem.until[dk]; ok {
		r.perSrc[dk.src]++
	}
	return true
}
