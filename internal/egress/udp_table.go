package egress

import (
	"net/netip"
	"sync"
	"time"
)

// Admission to a UDP listener's flow table. One client must not stop
// everyone's UDP, so:
//
//   - a denied flow holds no flow slot: it is remembered apart (udp_deny.go)
//     for gateway.udpDenyTimeout, in at most gateway.udpMaxFlows entries,
//     the oldest forgotten first, and its record is written once per client
//     address and destination in that time;
//   - one client address holds at most gateway.udpMaxFlowsPerSource flows.
//     At its limit a new flow takes the place of the client's own least
//     recently used flow if that one has been idle for udpEvictIdle;
//     otherwise the datagram is dropped (source_limit);
//   - when the table holds gateway.udpMaxFlows flows, a new flow takes the
//     place of the least recently used flow of the heaviest source (the
//     one holding the most flows) if that source holds at least two more
//     flows than the new flow's source; otherwise of the least recently
//     used flow of the table if that one has been idle for udpEvictIdle;
//     otherwise the datagram is dropped (table_full).
//
// So a flood from one client, from any number of source ports and to any
// destination, takes no other client's flow slot, and several flooding
// clients share the table evenly while a light client's new flow still
// gets in.
// Flows are never ended for a client that is no heavier than the others
// unless they are idle. Clients are told apart by address (an IPv6
// client's every address counts as its own source).

// udpEvictIdle is how long a flow must have had no datagram before a new
// flow may take its place, unless (in a full table) the new flow's client
// holds at least two flows fewer than the flow's client.
const udpEvictIdle = time.Second

// Why a datagram is dropped (Metrics.UDPDropped) or a flow evicted
// (Metrics.UDPEvicted).
const (
	udpDropDenied      = "denied"
	udpDropSourceLimit = "source_limit"
	udpDropTableFull   = "table_full"
	udpDropOversized   = "oversized"
	udpDropOrigDst     = "original_dst"
	udpDropLoop        = "loop"
	udpDropSend        = "send"
)

// udpTable is the flows of one UDP listener. Only the listener's
// goroutine adds flows and evicts them; a flow's goroutine removes its
// own when it ends.
type udpTable struct {
	s        *Server
	listener string
	decide   udpDecide
	connect  udpConnect
	bufs     sync.Pool // *[]byte of udpBufSize, for flows' reads

	mu    sync.Mutex
	flows map[udpKey]*udpFlow
	srcs  map[netip.Addr]*udpSource
	// byCount[n] is how many sources hold n flows (n ≥ 1); heaviest is
	// the largest n with byCount[n] > 0 (0 when the table is empty).
	byCount  []int
	heaviest int
	// idleAfter: no flow of the table is idle for udpEvictIdle before
	// this time (learnt by the last search that found none).
	idleAfter time.Time
	denied    udpMemory[udpKey] // denied flows, so their retries are dropped
	records   udpDenyRecords    // deny records written lately
	wg        sync.WaitGroup    // flow goroutines
}

// udpSource is one client address's flows.
type udpSource struct {
	flows     map[udpKey]*udpFlow
	idleAfter time.Time // as udpTable.idleAfter, for these flows
}

func (s *Server) newUDPTable(listener string, decide udpDecide, connect udpConnect) *udpTable {
	t := &udpTable{
		s: s, listener: listener, decide: decide, connect: connect,
		flows:   make(map[udpKey]*udpFlow),
		srcs:    make(map[netip.Addr]*udpSource),
		byCount: make([]int, s.udp.perSource+1),
	}
	t.bufs.New = func() any { b := make([]byte, udpBufSize); return &b }
	return t
}

// admit makes room for a new flow from src: it returns the flow that
// must end for it (victim, its key, and why), no victim and no why when
// there is room, or only why when the new flow is refused. Called with
// t.mu held.
func (t *udpTable) admit(src netip.Addr, now time.Time) (udpKey, *udpFlow, string) {
	n := 0
	s := t.srcs[src]
	if s != nil {
		n = len(s.flows)
	}
	if n >= t.s.udp.perSource {
		if k, f := idleFlow(s.flows, &s.idleAfter, now); f != nil {
			return k, f, udpDropSourceLimit
		}
		return udpKey{}, nil, udpDropSourceLimit
	}
	if len(t.flows) < t.s.udp.maxFlows {
		return udpKey{}, nil, ""
	}
	if t.heaviest >= n+2 {
		for _, h := range t.srcs {
			if len(h.flows) == t.heaviest {
				k, f := leastRecent(h.flows)
				return k, f, udpDropTableFull
			}
		}
	}
	if k, f := idleFlow(t.flows, &t.idleAfter, now); f != nil {
		return k, f, udpDropTableFull
	}
	return udpKey{}, nil, udpDropTableFull
}

// leastRecent returns the flow of flows with the oldest last datagram.
func leastRecent(flows map[udpKey]*udpFlow) (udpKey, *udpFlow) {
	var (
		lk   udpKey
		lf   *udpFlow
		last int64
	)
	for k, f := range flows {
		if l := f.last.Load(); lf == nil || l < last {
			lk, lf, last = k, f, l
		}
	}
	return lk, lf
}

// idleFlow returns the least recently used flow of flows if it has been
// idle for udpEvictIdle, else nil. *after caches the answer: when none
// is idle, none can be before the oldest becomes so (flows only get
// newer), so searches until then are skipped.
func idleFlow(flows map[udpKey]*udpFlow, after *time.Time, now time.Time) (udpKey, *udpFlow) {
	if now.Before(*after) {
		return udpKey{}, nil
	}
	k, f := leastRecent(flows)
	if f == nil {
		return udpKey{}, nil
	}
	idleAt := time.Unix(0, f.last.Load()).Add(udpEvictIdle)
	if now.Before(idleAt) {
		*after = idleAt
		return udpKey{}, nil
	}
	return k, f
}

// add puts a new flow in the table. Called with t.mu held.
func (t *udpTable) add(k udpKey, uf *udpFlow) {
	t.flows[k] = uf
	s := t.srcs[k.src.Addr()]
	if s == nil {
		s = &udpSource{flows: make(map[udpKey]*udpFlow)}
		t.srcs[k.src.Addr()] = s
	}
	n := len(s.flows)
	s.flows[k] = uf
	t.count(n, n+1)
}

// remove takes uf out of the table if it is still there (an evicted
// flow's goroutine finds it gone). Called with t.mu held.
func (t *udpTable) remove(k udpKey, uf *udpFlow) {
	if t.flows[k] != uf {
		return
	}
	delete(t.flows, k)
	s := t.srcs[k.src.Addr()]
	n := len(s.flows)
	delete(s.flows, k)
	if n == 1 {
		delete(t.srcs, k.src.Addr())
	}
	t.count(n, n-1)
}

// count moves one source from holding from flows to holding to flows.
func (t *udpTable) count(from, to int) {
	if from > 0 {
		t.byCount[from]--
	}
	if to > 0 {
		t.byCount[to]++
	}
	t.heaviest = max(t.heaviest, to)
	for t.heaviest > 0 && t.byCount[t.heaviest] == 0 {
		t.heaviest--
	}
}
