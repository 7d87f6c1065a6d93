package policy

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// hitsConfig has two groups; group "early" (priority 100) is processed
// before group "late" (priority 200) although it is listed second, and
// network rules come before application rules whatever the groups.
func hitsConfig() Config {
	return Config{RuleCollectionGroups: []RuleCollectionGroup{
		{Name: "late", Priority: 200, RuleCollections: []RuleCollection{
			coll("web", TypeApplication, 100, ActionAllow,
				appRule("a1", "*", []string{"https:443"}, "a.example.com"),
				appRule("a2", "*", []string{"https:443"}, "b.example.com")),
			coll("ntp", TypeNetwork, 100, ActionAllow, netRule("n1", "UDP", "*", "10.0.0.1", "123")),
		}},
		{Name: "early", Priority: 100, RuleCollections: []RuleCollection{
			coll("deny", TypeApplication, 300, ActionDeny, appRule("d1", "*", []string{"https:443"}, "bad.example.com")),
			coll("dns", TypeNetwork, 200, ActionAllow, netRule("n2", "UDP", "*", "10.0.0.2", "53")),
		}},
	}}
}

func dec(group, coll, rule string, v Verdict) Decision {
	d := Decision{Verdict: v, Reason: ReasonRuleAllow, Type: TypeApplication, Group: group, Collection: coll, Rule: rule}
	if v == VerdictDeny {
		d.Reason = ReasonRuleDeny
	}
	return d
}

var t0 = time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)

func TestHitsCount(t *testing.T) {
	h := NewHits(t0)
	h.Count("gateway", dec("late", "web", "a1", VerdictAllow), t0.Add(2*time.Second))
	h.Count("dns", dec("late", "web", "a1", VerdictAllow), t0.Add(time.Second))
	h.Count("gateway", dec("late", "web", "a1", VerdictAllow), t0.Add(3*time.Second))
	h.Count("gateway", Deny(ReasonNoMatch), t0.Add(4*time.Second))
	h.Count("dns", Deny(ReasonNoMatch), t0)
	h.Count("dns", Decision{Verdict: VerdictAllow, Reason: ReasonPrivateZone}, t0)

	snap := h.Snapshot()
	if len(snap) != 1 {
		t.Fatalf("Snapshot = %+v, want one rule", snap)
	}
	got := snap[0]
	if got.RuleRef != (RuleRef{"late", "web", "a1"}) || got.Hits != 3 {
		t.Errorf("rule = %+v, want late/web/a1 with 3 hits", got)
	}
	if got.ByComponent["gateway"] != 2 || got.ByComponent["dns"] != 1 {
		t.Errorf("ByComponent = %v, want gateway 2 dns 1", got.ByComponent)
	}
	// First and Last are the earliest and latest times, whatever the order
	// the counts came in.
	if !got.First.Equal(t0.Add(time.Second)) || !got.Last.Equal(t0.Add(3*time.Second)) {
		t.Errorf("First, Last = %v, %v; want +1s, +3s", got.First, got.Last)
	}
	if s := got.RuleRef.String(); s != "late/web/a1" {
		t.Errorf("String = %q", s)
	}
	// The snapshot is a copy.
	snap[0].ByComponent["gateway"] = 99
	if h.Snapshot()[0].ByComponent["gateway"] != 2 {
		t.Error("Snapshot shares its maps with the counter")
	}

	rep := h.Report(hitsConfig())
	want := map[string]uint64{"gateway deny": 1, "dns deny": 1, "dns allow": 1}
	if fmt.Sprint(rep.NoRule) != fmt.Sprint(want) {
		t.Errorf("NoRule = %v, want %v", rep.NoRule, want)
	}
	if !rep.Since.Equal(t0) {
		t.Errorf("Since = %v, want %v", rep.Since, t0)
	}
}

func TestHitsReportOrder(t *testing.T) {
	h := NewHits(t0)
	h.Count("gateway", dec("late", "web", "a2", VerdictAllow), t0)
	h.Count("gateway", dec("early", "deny", "d1", VerdictDeny), t0)
	rep := h.Report(hitsConfig())
	var order []string
	for _, r := range rep.Rules {
		order = append(order, fmt.Sprintf("%s:%s:%d", r.RuleRef, r.Type, r.Hits))
	}
	// Network before application; within a type group priority, then
	// collection priority, then rule order.
	want := []string{
		"early/dns/n2:network:0",
		"late/ntp/n1:network:0",
		"early/deny/d1:application:1",
		"late/web/a1:application:0",
		"late/web/a2:application:1",
	}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("order =\n%v\nwant\n%v", order, want)
	}
	for _, r := range rep.Rules {
		if r.Stale {
			t.Errorf("%s is stale", r.RuleRef)
		}
		if r.RuleRef.Rule == "d1" && r.Action != ActionDeny {
			t.Errorf("d1 action = %q, want deny", r.Action)
		}
	}
}

func TestHitsNeverHit(t *testing.T) {
	h := NewHits(t0)
	h.Count("dns", dec("late", "web", "a1", VerdictAllow), t0)
	never := h.Report(hitsConfig()).NeverHit()
	var got []string
	for _, r := range never {
		got = append(got, r.RuleRef.String())
		if !r.First.IsZero() || !r.Last.IsZero() || r.Hits != 0 {
			t.Errorf("never-hit %s has %+v", r.RuleRef, r)
		}
	}
	want := []string{"early/dns/n2", "late/ntp/n1", "early/deny/d1", "late/web/a2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("NeverHit = %v, want %v", got, want)
	}
	// An empty policy reports no rules, as an empty list.
	rep := h.Report(Config{})
	if len(rep.Rules) != 1 || !rep.Rules[0].Stale {
		t.Errorf("Report(empty) = %+v, want the one counted rule, stale", rep.Rules)
	}
	if r := NewHits(t0).Report(Config{}); r.Rules == nil || len(r.Rules) != 0 {
		t.Errorf("Report of nothing = %#v, want an empty non-nil list", r.Rules)
	}
}

func TestHitsStale(t *testing.T) {
	h := NewHits(t0)
	h.Count("gateway", dec("late", "web", "renamed", VerdictAllow), t0)
	h.Count("gateway", dec("gone", "x", "y", VerdictAllow), t0)
	h.Count("gateway", dec("late", "web", "a1", VerdictAllow), t0)
	rep := h.Report(hitsConfig())
	n := len(rep.Rules)
	if n != 7 {
		t.Fatalf("%d rules, want 5 of the policy and 2 stale: %+v", n, rep.Rules)
	}
	for i, want := range []string{"gone/x/y", "late/web/renamed"} {
		r := rep.Rules[5+i]
		if r.RuleRef.String() != want || !r.Stale || r.Hits != 1 || r.Type != "" {
			t.Errorf("stale[%d] = %+v, want %s stale with 1 hit and no type", i, r, want)
		}
	}
}

func TestHitsNil(t *testing.T) {
	var h *Hits
	h.Count("gateway", dec("late", "web", "a1", VerdictAllow), t0) // no panic
	if s := h.Snapshot(); s != nil {
		t.Errorf("nil Snapshot = %v", s)
	}
	rep := h.Report(hitsConfig())
	if len(rep.Rules) != 5 || len(rep.NeverHit()) != 5 || rep.NoRule != nil {
		t.Errorf("nil Report = %+v, want every rule never hit", rep)
	}
}

func TestHitsSinceMovesBack(t *testing.T) {
	// Counting from records read from a file: the counter starts at zero
	// and since becomes the first record's time.
	h := NewHits(time.Time{})
	h.Count("gateway", Deny(ReasonNoMatch), t0.Add(time.Minute))
	h.Count("gateway", Deny(ReasonNoMatch), t0)
	if got := h.Report(Config{}).Since; !got.Equal(t0) {
		t.Errorf("Since = %v, want %v", got, t0)
	}
}

func TestHitsConcurrent(t *testing.T) {
	h := NewHits(t0)
	const workers, each = 8, 1000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			comp := "gateway"
			if w%2 == 1 {
				comp = "dns"
			}
			for i := range each {
				h.Count(comp, dec("late", "web", "a1", VerdictAllow), t0.Add(time.Duration(i)*time.Millisecond))
				if i%100 == 0 {
					_ = h.Snapshot()
					_ = h.Report(hitsConfig())
				}
			}
		}()
	}
	wg.Wait()
	s := h.Snapshot()
	if len(s) != 1 || s[0].Hits != workers*each || s[0].ByComponent["gateway"] != workers/2*each {
		t.Errorf("after concurrent counts: %+v, want %d hits", s, workers*each)
	}
}
