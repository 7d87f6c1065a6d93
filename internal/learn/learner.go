package learn

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/airlockdev/airlock/internal/policy"
)

// DefaultMaxKeys bounds the distinct keys a Learner keeps.
const DefaultMaxKeys = 100_000

// maxSources bounds the distinct source addresses kept per key; beyond it
// the evidence says "more than".
const maxSources = 32

// Options configure a Learner.
type Options struct {
	// Sources are the source groups (the learn section, or --sources).
	Sources []SourceGroup
	// Threshold is the number of distinct sibling names that makes a
	// "*.domain" rule; 0 means DefaultThreshold, 1 is taken as 2.
	Threshold int
	// Tags are the built-in FQDN tags names are matched against; nil means
	// policy.Tags().
	Tags []policy.FQDNTag
	// Existing is the policy in force: its location expands tag entries,
	// and the proposal's group gets a name and priority it does not use.
	Existing policy.Config
	// MaxKeys bounds the distinct (source group, name or address, port,
	// protocol) keys kept; 0 means DefaultMaxKeys. Denied records of new
	// keys beyond it are counted in Stats.Dropped and not learned.
	MaxKeys int
}

// Stats count what a Learner was fed.
type Stats struct {
	// Records is every record added; Allowed and Denied split it.
	Records, Allowed, Denied int64
	// ReportMode counts the denied records that report mode let through
	// (would_deny).
	ReportMode int64
	// NotLearnable counts denied records no allow rule can fix, by reason
	// (internal_address, rule_deny, …; "dns qtype X" for DNS questions of
	// other types than A, AAAA and HTTPS; "no name or address" for a
	// gateway record with neither).
	NotLearnable map[string]int64
	// Dropped counts denied records not learned because the key limit was
	// reached; Keys is the number of keys kept.
	Dropped int64
	Keys    int
	// First and Last are the earliest and latest record times seen.
	First, Last time.Time
}

type keyKind uint8

const (
	kindApp keyKind = iota + 1 // gateway flow with a name: application rule
	kindNet                    // gateway flow without a name: network rule
	kindDNS                    // DNS question denied
)

// key is what one piece of evidence is about.
type key struct {
	group int        // index into Learner.groups; -1: the source's own address
	addr  netip.Addr // the source, when group is -1
	kind  keyKind
	name  string // app, dns
	dst   netip.Addr
	port  uint16
	proto policy.Proto
	app   policy.App
}

// evidence is what was seen of one key (or of the keys one rule covers).
type evidence struct {
	hits, dnsHits int64
	sources       []netip.Addr // distinct, at most maxSources
	moreSources   bool
	first, last   time.Time
	bytes         int64
	report        bool
}

func (e *evidence) addSource(a netip.Addr) {
	if slices.Contains(e.sources, a) {
		return
	}
	if len(e.sources) >= maxSources {
		e.moreSources = true
		return
	}
	e.sources = append(e.sources, a)
}

func (e *evidence) addTime(t time.Time) {
	if t.IsZero() {
		return
	}
	if e.first.IsZero() || t.Before(e.first) {
		e.first = t
	}
	if t.After(e.last) {
		e.last = t
	}
}

// merge adds o to e.
func (e *evidence) merge(o *evidence) {
	e.hits += o.hits
	e.dnsHits += o.dnsHits
	e.bytes += o.bytes
	e.report = e.report || o.report
	e.moreSources = e.moreSources || o.moreSources
	for _, s := range o.sources {
		e.addSource(s)
	}
	e.addTime(o.first)
	e.addTime(o.last)
}

// group is a configured source group with its ranges parsed.
type group struct {
	name     string
	ranges   []string
	prefixes []netip.Prefix
}

// Learner aggregates records. Its memory grows with distinct keys, not with
// records. Not safe for concurrent use.
type Learner struct {
	opts   Options
	groups []group
	keys   map[key]*evidence
	// gwProtos are the names the gateway saw, allowed or denied, with the
	// application protocols (https:443) they were seen with.
	gwProtos map[string][]string
	tags     []tagMatcher
	stats    Stats
}

// New returns a Learner. Source groups are expected to be valid (the config
// section and ParseSources check them); ranges that do not parse are left
// out.
func New(opts Options) *Learner {
	switch {
	case opts.Threshold <= 0:
		opts.Threshold = DefaultThreshold
	case opts.Threshold < 2:
		opts.Threshold = 2 // one name is not a set of siblings
	}
	if opts.Tags == nil {
		opts.Tags = policy.Tags()
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	l := &Learner{opts: opts, keys: map[key]*evidence{}, gwProtos: map[string][]string{},
		stats: Stats{NotLearnable: map[string]int64{}}}
	for _, g := range opts.Sources {
		pg := group{name: g.Name, ranges: g.Ranges}
		for _, r := range g.Ranges {
			if p, err := parseRange(r); err == nil {
				pg.prefixes = append(pg.prefixes, p)
			}
		}
		l.groups = append(l.groups, pg)
	}
	l.tags = compileTags(opts.Tags, opts.Existing.Location)
	return l
}

// maxProtosPerName bounds the protocols remembered per gateway name.
const maxProtosPerName = 8

func (l *Learner) seenAtGateway(name, proto string) {
	ps, ok := l.gwProtos[name]
	if !ok && len(l.gwProtos) >= l.opts.MaxKeys {
		return
	}
	if len(ps) < maxProtosPerName && !slices.Contains(ps, proto) {
		l.gwProtos[name] = append(ps, proto)
	}
}

// groupOf returns the index of the first group holding a, or -1.
func (l *Learner) groupOf(a netip.Addr) int {
	for i, g := range l.groups {
		for _, p := range g.prefixes {
			if p.Contains(a) {
				return i
			}
		}
	}
	return -1
}

// learnable reports whether an allow rule can turn a deny with this reason
// into an allow: no rule matched. A deny rule's deny (rule_deny) is a
// decision someone wrote; the others are checks outside the rules.
func learnable(r policy.Reason) bool {
	switch r {
	case policy.ReasonNoMatch, policy.ReasonSNIMissing, policy.ReasonHostMissing:
		return true
	}
	return false
}

// Add counts one record.
func (l *Learner) Add(r Record) {
	st := &l.stats
	st.Records++
	if !r.Time.IsZero() {
		if st.First.IsZero() || r.Time.Before(st.First) {
			st.First = r.Time
		}
		if r.Time.After(st.Last) {
			st.Last = r.Time
		}
	}
	if r.Component == ComponentGateway && !r.Name.IsZero() && r.App != policy.AppNone && r.Port != 0 {
		l.seenAtGateway(r.Name.String(), r.App.String()+":"+strconv.Itoa(int(r.Port)))
	}
	if !r.Denied() {
		st.Allowed++
		return
	}
	st.Denied++
	if r.WouldDeny {
		st.ReportMode++
	}
	if !learnable(r.Decision.Reason) {
		reason := string(r.Decision.Reason)
		if reason == "" {
			reason = "unknown"
		}
		st.NotLearnable[reason]++
		return
	}
	k := key{group: l.groupOf(r.Src)}
	if k.group < 0 {
		k.addr = r.Src
	}
	switch {
	case r.Component == ComponentDNS:
		switch {
		case r.Name.IsZero():
			st.NotLearnable["dns name invalid"]++
			return
		case r.QType != "A" && r.QType != "AAAA" && r.QType != "HTTPS":
			st.NotLearnable["dns qtype "+clip(r.QType)]++
			return
		}
		k.kind, k.name = kindDNS, r.Name.String()
	case !r.Name.IsZero() && r.Proto == policy.ProtoTCP && r.App != policy.AppNone && r.Port != 0:
		k.kind, k.name, k.port, k.app = kindApp, r.Name.String(), r.Port, r.App
	case r.Dst.IsValid():
		k.kind, k.dst, k.proto = kindNet, r.Dst.Addr(), r.Proto
		if r.Proto != policy.ProtoICMP {
			k.port = r.Dst.Port()
		}
	default:
		st.NotLearnable["no name or address"]++
		return
	}
	e := l.keys[k]
	if e == nil {
		if len(l.keys) >= l.opts.MaxKeys {
			st.Dropped++
			return
		}
		e = &evidence{}
		l.keys[k] = e
	}
	if k.kind == kindDNS {
		e.dnsHits++
	} else {
		e.hits++
	}
	e.addSource(r.Src)
	e.addTime(r.Time)
	e.bytes += r.BytesUp + r.BytesDown
	e.report = e.report || r.WouldDeny
}

// Stats returns the counts so far.
func (l *Learner) Stats() Stats {
	s := l.stats
	s.Keys = len(l.keys)
	s.NotLearnable = make(map[string]int64, len(l.stats.NotLearnable))
	for k, v := range l.stats.NotLearnable {
		s.NotLearnable[k] = v
	}
	return s
}

// sortedKeys returns the keys in a deterministic order.
func (l *Learner) sortedKeys() []key {
	ks := make([]key, 0, len(l.keys))
	for k := range l.keys {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.group, b.group), a.addr.Compare(b.addr), cmp.Compare(a.kind, b.kind),
			cmp.Compare(a.name, b.name), a.dst.Compare(b.dst), cmp.Compare(a.proto, b.proto),
			cmp.Compare(a.app, b.app), cmp.Compare(a.port, b.port))
	})
	return ks
}
