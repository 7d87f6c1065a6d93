package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Decision record sizes.
const (
	// DefaultDecisionsKept is how many decision records the console keeps
	// in memory (GET /api/decisions, `policy learn --server`).
	DefaultDecisionsKept = 10000
	// DefaultStreamQueue is how many records a stream client may be behind
	// before it is dropped.
	DefaultStreamQueue = 256
	// perMinuteWindow is how many minutes of allow/deny counts the
	// overview shows.
	perMinuteWindow = 60
)

// The two messages of decision records (internal/egress/record.go,
// internal/dnsserver/record.go).
const (
	MsgEgressDecision = "egress decision"
	MsgDNSDecision    = "dns decision"
)

// Decisions keeps the most recent decision records exactly as logged (one
// JSON object per line), counts them per minute, and hands each new record
// to the stream subscribers whose filter it passes.
//
// Concurrency: Add is called on the logging path and never blocks on a
// subscriber: each has a bounded queue, and a subscriber whose queue is
// full loses the record and is dropped (its channel is closed; a browser's
// EventSource reconnects). Every method is safe for concurrent use.
type Decisions struct {
	now     func() time.Time
	queue   int
	dropped prometheus.Counter

	mu      sync.Mutex
	ring    []entry // capacity fixed; next is the oldest once full
	next    int
	full    bool
	minutes [perMinuteWindow]minuteCount
	subs    map[*Subscription]struct{}
}

// entry is one kept record with what filters look at.
type entry struct {
	line []byte // without the trailing newline; never modified
	meta recordMeta
}

// recordMeta are the fields of a decision record that filters and counts
// read.
type recordMeta struct {
	Msg        string `json:"msg"`
	Src        string `json:"src"`
	Name       string `json:"name"`
	QName      string `json:"qname"`
	Verdict    string `json:"verdict"`
	WouldDeny  bool   `json:"would_deny"`
	Group      string `json:"group"`
	Collection string `json:"collection"`
	Rule       string `json:"rule"`
}

// minuteCount counts one minute's decisions.
type minuteCount struct {
	minute                 int64 // unix minute; 0: unused
	allow, deny, wouldDeny int
}

// DecisionsOptions configure NewDecisions.
type DecisionsOptions struct {
	// Keep is how many records are kept; 0: DefaultDecisionsKept.
	Keep int
	// Queue is each stream client's queue; 0: DefaultStreamQueue.
	Queue int
	// Registerer gets airlock_admin_stream_dropped_total (nil: not
	// registered).
	Registerer prometheus.Registerer
	// Now is the clock of the per-minute counts; nil: time.Now.
	Now func() time.Time
}

// NewDecisions returns an empty record keeper.
func NewDecisions(o DecisionsOptions) *Decisions {
	if o.Keep <= 0 {
		o.Keep = DefaultDecisionsKept
	}
	if o.Queue <= 0 {
		o.Queue = DefaultStreamQueue
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	d := &Decisions{now: o.Now, queue: o.Queue, ring: make([]entry, 0, o.Keep), subs: map[*Subscription]struct{}{},
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_admin_stream_dropped_total",
			Help: "Decision records not delivered to a console stream client because its queue was full (the client is then disconnected).",
		})}
	if o.Registerer != nil {
		o.Registerer.MustRegister(d.dropped)
	}
	return d
}

// Collectors are the metrics of d, for a registry chosen after NewDecisions.
func (d *Decisions) Collectors() []prometheus.Collector { return []prometheus.Collector{d.dropped} }

// Add keeps one logged line if it is a decision record (a JSON object whose
// msg is "egress decision" or "dns decision"), counts it, and queues it for
// every subscriber whose filter it passes. Other lines are ignored. line is
// copied. It reports whether the line was kept.
func (d *Decisions) Add(line []byte) bool {
	line = bytes.TrimRight(line, "\r\n")
	var m recordMeta
	if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &m) != nil {
		return false
	}
	if m.Msg != MsgEgressDecision && m.Msg != MsgDNSDecision {
		return false
	}
	e := entry{line: bytes.Clone(line), meta: m}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.ring) < cap(d.ring) {
		d.ring = append(d.ring, e)
	} else {
		d.ring[d.next] = e
		d.next = (d.next + 1) % len(d.ring)
		d.full = true
	}
	d.count(now, m)
	for s := range d.subs {
		if !s.filter.match(&m) {
			continue
		}
		select {
		case s.ch <- e.line:
		default:
			// A full queue: the client is too slow. Drop it rather than
			// wait or buffer without bound.
			d.dropped.Inc()
			delete(d.subs, s)
			close(s.ch)
		}
	}
	return true
}

// count adds m to its minute's counts; callers hold d.mu.
func (d *Decisions) count(now time.Time, m recordMeta) {
	min := now.Unix() / 60
	c := &d.minutes[min%perMinuteWindow]
	if c.minute != min {
		*c = minuteCount{minute: min}
	}
	switch {
	case m.WouldDeny:
		c.wouldDeny++
	case m.Verdict == "deny":
		c.deny++
	case m.Verdict == "allow":
		c.allow++
	}
}

// Minute is one minute of decision counts.
type Minute struct {
	Minute    time.Time `json:"minute"`
	Allow     int       `json:"allow"`
	Deny      int       `json:"deny"`
	WouldDeny int       `json:"wouldDeny"`
}

// PerMinute returns the counts of the last 60 minutes, the current one
// last; minutes without decisions are zero.
func (d *Decisions) PerMinute() []Minute {
	now := d.now().Unix() / 60
	out := make([]Minute, perMinuteWindow)
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range out {
		min := now - perMinuteWindow + 1 + int64(i)
		out[i].Minute = time.Unix(min*60, 0).UTC()
		if c := d.minutes[min%perMinuteWindow]; c.minute == min {
			out[i].Allow, out[i].Deny, out[i].WouldDeny = c.allow, c.deny, c.wouldDeny
		}
	}
	return out
}

// Len is the number of records kept.
func (d *Decisions) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ring)
}

// Recent returns up to limit (0: all) of the most recent kept records that
// pass f, oldest first. The lines must not be modified.
func (d *Decisions) Recent(f Filter, limit int) [][]byte {
	d.mu.Lock()
	all := make([]entry, 0, len(d.ring))
	if d.full {
		all = append(all, d.ring[d.next:]...)
		all = append(all, d.ring[:d.next]...)
	} else {
		all = append(all, d.ring...)
	}
	d.mu.Unlock()
	var out [][]byte
	for i := len(all) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		if f.match(&all[i].meta) {
			out = append(out, all[i].line)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// Subscription is one stream client's queue of new records.
type Subscription struct {
	ch     chan []byte
	filter Filter
}

// C delivers the records; it is closed when the subscriber was dropped for
// falling behind (or after Unsubscribe).
func (s *Subscription) C() <-chan []byte { return s.ch }

// Subscribe starts delivering new records that pass f.
func (d *Decisions) Subscribe(f Filter) *Subscription {
	s := &Subscription{ch: make(chan []byte, d.queue), filter: f}
	d.mu.Lock()
	d.subs[s] = struct{}{}
	d.mu.Unlock()
	return s
}

// Unsubscribe stops delivering to s at once and frees it.
func (d *Decisions) Unsubscribe(s *Subscription) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.subs[s]; ok {
		delete(d.subs, s)
		close(s.ch)
	}
}

// Subscribers is the number of stream clients.
func (d *Decisions) Subscribers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.subs)
}

// Filter selects decision records; the zero Filter passes all.
type Filter struct {
	// Verdict is "allow", "deny" (including would-deny records of report
	// mode) or empty.
	Verdict string
	// Src is an address or prefix the record's source must be in;
	// invalid: any.
	Src netip.Prefix
	// Name is a case-insensitive part of the record's name (gateway) or
	// qname (DNS).
	Name string
	// Rule is the deciding rule: its name, collection/rule or
	// group/collection/rule.
	Rule string
}

// ParseFilter reads verdict, src, name and rule from query values (get is
// url.Values.Get), with an error that says what is accepted.
func ParseFilter(get func(string) string) (Filter, error) {
	var f Filter
	switch v := get("verdict"); v {
	case "", "allow", "deny":
		f.Verdict = v
	default:
		return f, fmt.Errorf("verdict %q: use allow or deny", v)
	}
	if s := get("src"); s != "" {
		if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			f.Src = netip.PrefixFrom(a, a.BitLen())
		} else if p, err := netip.ParsePrefix(s); err == nil {
			f.Src = p.Masked()
		} else {
			return f, fmt.Errorf("src %q: use an IP address or a CIDR such as 10.244.0.0/16", s)
		}
	}
	f.Name = strings.ToLower(strings.TrimSuffix(get("name"), "."))
	f.Rule = get("rule")
	return f, nil
}

func (f *Filter) match(m *recordMeta) bool {
	if f.Verdict != "" && m.Verdict != f.Verdict {
		return false
	}
	if f.Src.IsValid() {
		ap, err := netip.ParseAddrPort(m.Src)
		var a netip.Addr
		if err == nil {
			a = ap.Addr()
		} else if a, err = netip.ParseAddr(m.Src); err != nil {
			return false
		}
		if !f.Src.Contains(a.Unmap()) {
			return false
		}
	}
	if f.Name != "" {
		n := m.Name
		if n == "" {
			n = m.QName
		}
		if !strings.Contains(strings.ToLower(n), f.Name) {
			return false
		}
	}
	if f.Rule != "" && m.Rule != f.Rule && m.Collection+"/"+m.Rule != f.Rule && m.Group+"/"+m.Collection+"/"+m.Rule != f.Rule {
		return false
	}
	return true
}
