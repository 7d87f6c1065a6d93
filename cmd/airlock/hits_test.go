package main

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/airlockdev/airlock/internal/policy"
)

func TestHitsCollector(t *testing.T) {
	h := policy.NewHits(time.Now())
	reg := prometheus.NewRegistry()
	// As serve registers it: on the registerer that names the replica.
	prometheus.WrapRegistererWith(prometheus.Labels{"replica": "r1"}, reg).MustRegister(newHitsCollector(h))
	if n, err := testutil.GatherAndCount(reg, "airlock_policy_rule_hits_total"); err != nil || n != 0 {
		t.Fatalf("series before any hit = %d (%v), want 0", n, err)
	}
	allow := policy.Decision{Verdict: policy.VerdictAllow, Reason: policy.ReasonRuleAllow, Type: policy.TypeApplication,
		Group: "nodes", Collection: "web", Rule: "registry"}
	now := time.Now()
	h.Count("gateway", allow, now)
	h.Count("gateway", allow, now)
	h.Count("dns", allow, now)
	h.Count("gateway", policy.Deny(policy.ReasonNoMatch), now) // no rule: no series
	want := `
# HELP airlock_policy_rule_hits_total Decisions made by each policy rule, by the component that asked (gateway: one per flow; dns: one per question).
# TYPE airlock_policy_rule_hits_total counter
airlock_policy_rule_hits_total{collection="web",component="dns",group="nodes",replica="r1",rule="registry"} 1
airlock_policy_rule_hits_total{collection="web",component="gateway",group="nodes",replica="r1",rule="registry"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "airlock_policy_rule_hits_total"); err != nil {
		t.Error(err)
	}
	// Read at scrape time: a later hit shows in the next scrape.
	h.Count("dns", allow, now)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(strings.Replace(want, `rule="registry"} 1`, `rule="registry"} 2`, 1)),
		"airlock_policy_rule_hits_total"); err != nil {
		t.Error(err)
	}
}
