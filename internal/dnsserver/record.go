package dnsserver

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/airlockdev/airlock/internal/policy"
)

// Log keys of the decision record.
const (
	keySrc        = "src"
	keyProto      = "proto"
	keyQName      = "qname"
	keyQType      = "qtype"
	keyVerdict    = "verdict"
	keyReason     = "reason"
	keyType       = "rule_type"
	keyGroup      = "group"
	keyCollection = "collection"
	keyRule       = "rule"
	keyRcode      = "rcode"
	keyDecidedBy  = "decided_name"
	keyAnswers    = "answers"
	keyStripped   = "stripped"
	keyCache      = "cache"
	keyDuration   = "duration_ms"
	keyError      = "error"
	keyMode       = "mode"
	keyWouldDeny  = "would_deny"
)

// hitsComponent is the component DNS counts rule hits for.
const hitsComponent = "dns"

// Sampling of allowed queries (logAllowed: sampled).
const (
	sampleWindow = time.Minute
	sampleEvery  = 100
	sampleNames  = 10000 // names tracked before the table is reset
)

// record is what one query produced; it becomes one log line.
type record struct {
	src      netip.Addr
	tcp      bool
	qname    string
	qtype    uint16
	decision policy.Decision
	decided  string // the chain name that decided a deny, when not qname
	// wouldDeny: the policy denied the name but report mode answered it.
	wouldDeny bool
	rcode     int
	answers   int
	stripped  []string
	cache     string // "", hit, miss, stale
	err       error

	// Not logged: what the fast path needs to replay the answer.
	pol      *policySnap // the policy the query was decided under
	hit      cacheHit    // the cache entry a "hit" answer came from
	zoneTail bool        // a CNAME chain was finished by a private zone
}

// sampler decides which allowed queries are logged in sampled mode: the
// first for a name in each minute, then every 100th in that minute.
type sampler struct {
	mu    sync.Mutex
	names map[string]*sample
}

type sample struct {
	window time.Time
	count  int
}

func (s *sampler) keep(name string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.names == nil || len(s.names) >= sampleNames {
		s.names = map[string]*sample{}
	}
	e := s.names[name]
	if e == nil || now.Sub(e.window) >= sampleWindow {
		s.names[name] = &sample{window: now, count: 1}
		return true
	}
	e.count++
	return e.count%sampleEvery == 0
}

// logRecord writes rec once, as one JSON-able record, if the settings say
// so; start is the wall-clock time the query arrived.
func (s *Server) logRecord(rec *record, start time.Time) {
	if rec.decision.Allowed() {
		switch s.cfg.LogAllowed {
		case LogNone:
			return
		case LogSampled:
			if !s.sampler.keep(rec.qname, s.now()) {
				return
			}
		}
	}
	d := rec.decision
	proto := "udp"
	if rec.tcp {
		proto = "tcp"
	}
	attrs := []slog.Attr{
		slog.String(keySrc, rec.src.String()),
		slog.String(keyProto, proto),
		slog.String(keyQName, rec.qname),
		slog.String(keyQType, dns.Type(rec.qtype).String()),
		slog.String(keyVerdict, string(d.Verdict)),
		slog.String(keyReason, string(d.Reason)),
		slog.String(keyRcode, dns.RcodeToString[rec.rcode]),
		slog.Int(keyAnswers, rec.answers),
		slog.Float64(keyDuration, float64(time.Since(start).Microseconds())/1000),
	}
	if d.Type != "" {
		attrs = append(attrs, slog.String(keyType, string(d.Type)), slog.String(keyGroup, d.Group),
			slog.String(keyCollection, d.Collection), slog.String(keyRule, d.Rule))
	}
	if rec.decided != "" {
		attrs = append(attrs, slog.String(keyDecidedBy, rec.decided))
	}
	if len(rec.stripped) > 0 {
		attrs = append(attrs, slog.Any(keyStripped, rec.stripped))
	}
	if rec.cache != "" {
		attrs = append(attrs, slog.String(keyCache, rec.cache))
	}
	if rec.err != nil {
		attrs = append(attrs, slog.String(keyError, rec.err.Error()))
	}
	if s.report {
		attrs = append(attrs, slog.String(keyMode, ModeReport))
		if rec.wouldDeny {
			attrs = append(attrs, slog.Bool(keyWouldDeny, true))
		}
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "dns decision", attrs...)
}
