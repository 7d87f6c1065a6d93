package policy

import (
	"sort"
	"sync"
	"time"
)

// Hits counts the decisions each rule made, by the component that asked
// (gateway, dns), as Azure Firewall's Policy Analytics shows rule hits: the
// servers feed it one Count per decision, `airlock policy hits` and the
// console read a Report, which also lists the rules never hit. It is the
// one piece of mutable state in the package: it outlives policy reloads (a
// rule keeps its counts while its group, collection and name stay), takes
// its times from the caller and is safe for concurrent use.
type Hits struct {
	mu    sync.Mutex
	since time.Time
	rules map[RuleRef]*RuleHits
	// noRule counts decisions no rule made (no_match and the checks made
	// outside the rules), by component and verdict.
	noRule map[string]uint64
}

// RuleRef names one rule: group, collection and rule name.
type RuleRef struct {
	Group      string `json:"group"`
	Collection string `json:"collection"`
	Rule       string `json:"rule"`
}

// String is "group/collection/rule", the form of the metrics' rule label.
func (r RuleRef) String() string { return r.Group + "/" + r.Collection + "/" + r.Rule }

// RuleHits is one rule's counts.
type RuleHits struct {
	RuleRef
	// Type and Action are the rule's collection's; empty for a rule that
	// made decisions but is no longer in the policy the report is for.
	Type   CollectionType `json:"type,omitempty"`
	Action Action         `json:"action,omitempty"`
	// Hits is the total; ByComponent splits it (gateway, dns).
	Hits        uint64            `json:"hits"`
	ByComponent map[string]uint64 `json:"byComponent,omitempty"`
	// First and Last are the times of the first and last hit; zero when
	// never hit.
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	// Stale is true for a rule that has hits but is not in the policy
	// (renamed or removed since).
	Stale bool `json:"stale,omitempty"`
}

// HitsReport is every rule of a policy with its hits, in processing order
// (DNAT, network, application; group then collection priority; rule
// order), then the stale rules.
type HitsReport struct {
	// Since is when counting began (the process start, or the first
	// record read).
	Since time.Time  `json:"since,omitzero"`
	Rules []RuleHits `json:"rules"`
	// NoRule counts decisions no rule made, keyed "component verdict"
	// (for example "gateway deny").
	NoRule map[string]uint64 `json:"noRule,omitempty"`
}

// NeverHit returns the rules of the report with no hits.
func (r HitsReport) NeverHit() []RuleHits {
	var out []RuleHits
	for _, h := range r.Rules {
		if h.Hits == 0 {
			out = append(out, h)
		}
	}
	return out
}

// NewHits returns an empty counter; since is the start of counting.
func NewHits(since time.Time) *Hits {
	return &Hits{since: since, rules: map[RuleRef]*RuleHits{}, noRule: map[string]uint64{}}
}

// Count records one decision made for component at the given time. A nil
// *Hits counts nothing.
func (h *Hits) Count(component string, d Decision, at time.Time) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.since.IsZero() || at.Before(h.since) {
		h.since = at
	}
	if d.Rule == "" {
		h.noRule[component+" "+string(d.Verdict)]++
		return
	}
	ref := RuleRef{Group: d.Group, Collection: d.Collection, Rule: d.Rule}
	rh := h.rules[ref]
	if rh == nil {
		rh = &RuleHits{RuleRef: ref, ByComponent: map[string]uint64{}, First: at}
		h.rules[ref] = rh
	}
	rh.Hits++
	rh.ByComponent[component]++
	if at.Before(rh.First) {
		rh.First = at
	}
	if at.After(rh.Last) {
		rh.Last = at
	}
}

// Snapshot returns a copy of the counted rules, sorted by reference.
func (h *Hits) Snapshot() []RuleHits {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]RuleHits, 0, len(h.rules))
	for _, rh := range h.rules {
		out = append(out, copyHits(rh))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RuleRef.String() < out[j].RuleRef.String() })
	return out
}

func copyHits(rh *RuleHits) RuleHits {
	c := *rh
	c.ByComponent = make(map[string]uint64, len(rh.ByComponent))
	for k, v := range rh.ByComponent {
		c.ByComponent[k] = v
	}
	return c
}

// Report lists every rule of cfg with its hits (zero for rules never hit),
// in processing order, followed by counted rules that cfg no longer has
// (Stale).
func (h *Hits) Report(cfg Config) HitsReport {
	var rep HitsReport
	counted := map[RuleRef]RuleHits{}
	if h != nil {
		h.mu.Lock()
		rep.Since = h.since
		for ref, rh := range h.rules {
			counted[ref] = copyHits(rh)
		}
		if len(h.noRule) > 0 {
			rep.NoRule = make(map[string]uint64, len(h.noRule))
			for k, v := range h.noRule {
				rep.NoRule[k] = v
			}
		}
		h.mu.Unlock()
	}
	for _, t := range []CollectionType{TypeDNAT, TypeNetwork, TypeApplication} {
		type coll struct {
			gp, cp int
			g      string
			c      RuleCollection
		}
		var cs []coll
		for _, g := range cfg.RuleCollectionGroups {
			for _, c := range g.RuleCollections {
				if c.Type == t {
					cs = append(cs, coll{g.Priority, c.Priority, g.Name, c})
				}
			}
		}
		sort.SliceStable(cs, func(i, j int) bool {
			if cs[i].gp != cs[j].gp {
				return cs[i].gp < cs[j].gp
			}
			return cs[i].cp < cs[j].cp
		})
		for _, c := range cs {
			for _, r := range c.c.Rules {
				ref := RuleRef{Group: c.g, Collection: c.c.Name, Rule: r.Name}
				rh, ok := counted[ref]
				if !ok {
					rh = RuleHits{RuleRef: ref}
				}
				delete(counted, ref)
				rh.Type, rh.Action = c.c.Type, c.c.Action
				rep.Rules = append(rep.Rules, rh)
			}
		}
	}
	var stale []RuleHits
	for _, rh := range counted {
		rh.Stale = true
		stale = append(stale, rh)
	}
	sort.Slice(stale, func(i, j int) bool { return stale[i].RuleRef.String() < stale[j].RuleRef.String() })
	rep.Rules = append(rep.Rules, stale...)
	if rep.Rules == nil {
		rep.Rules = []RuleHits{}
	}
	return rep
}
