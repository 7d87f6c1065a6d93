package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlockdev/airlock/internal/policy"
)

// hitsCollector exports policy.Hits as
// airlock_policy_rule_hits_total{component,group,collection,rule}, read at
// scrape time: one counter per rule and component (gateway, dns) that
// decided at least once since the process started. Rules never hit have
// no series (`airlock policy hits` and the console list them); counts
// survive policy reloads and renamed rules keep their old series.
type hitsCollector struct {
	hits *policy.Hits
	desc *prometheus.Desc
}

func newHitsCollector(h *policy.Hits) *hitsCollector {
	return &hitsCollector{hits: h, desc: prometheus.NewDesc(
		"airlock_policy_rule_hits_total",
		"Decisions made by each policy rule, by the component that asked (gateway: one per flow; dns: one per question).",
		[]string{"component", "group", "collection", "rule"}, nil,
	)}
}

func (c *hitsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *hitsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.hits.Snapshot() {
		for comp, n := range r.ByComponent {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), comp, r.Group, r.Collection, r.Rule)
		}
	}
}
