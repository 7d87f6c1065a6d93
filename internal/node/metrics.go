package node

import "github.com/prometheus/client_golang/prometheus"

// AgentMetrics are the node agent's, named airlock_node_agent_*.
type AgentMetrics struct {
	// Applies counts applies by result: ok or error.
	Applies *prometheus.CounterVec
	// Repaired counts drift an apply repaired, by what drifted (DriftKinds).
	Repaired *prometheus.CounterVec
	// LastApply is the Unix time of the last successful apply.
	LastApply prometheus.Gauge
	// Converged is 1 when the last check found the node as apply left it.
	Converged prometheus.Gauge
}

// NewAgentMetrics registers the agent's metrics on reg (every label value
// starts at 0, so a scrape shows them before the first repair).
func NewAgentMetrics(reg prometheus.Registerer) *AgentMetrics {
	m := &AgentMetrics{
		Applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_node_agent_applies_total",
			Help: "Applies of the node section by the node agent, by result (ok, error).",
		}, []string{"result"}),
		Repaired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_node_agent_drift_repaired_total",
			Help: "Drift the node agent repaired by applying again, by what drifted (ruleset, file, resolver, route, state).",
		}, []string{"what"}),
		LastApply: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_node_agent_last_apply_timestamp_seconds",
			Help: "Unix time of the node agent's last successful apply (0: none yet).",
		}),
		Converged: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_node_agent_converged",
			Help: "1 when the node agent's last check found the node as apply left it, else 0.",
		}),
	}
	for _, r := range []string{"ok", "error"} {
		m.Applies.WithLabelValues(r)
	}
	for _, w := range DriftKinds {
		m.Repaired.WithLabelValues(w)
	}
	if reg != nil {
		reg.MustRegister(m.Applies, m.Repaired, m.LastApply, m.Converged)
	}
	return m
}
