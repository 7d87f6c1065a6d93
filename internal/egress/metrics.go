package egress

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the gateway, named airlock_egress_*.
type Metrics struct {
	// Flows counts decided flows by listener (proxy, transparent),
	// verdict, reason and deciding rule ("group/collection/rule", empty
	// when no rule decided). A report-mode flow counts under its would-be
	// verdict.
	Flows *prometheus.CounterVec
	// Bytes counts relayed bytes by direction: up (client to upstream) and
	// down.
	Bytes *prometheus.CounterVec
	// Tunnels is the number of relays carrying data now.
	Tunnels prometheus.Gauge
	// Refused counts connections refused before any decision: "loop" (the
	// original destination is the listener itself), "original_dst" (no
	// original destination could be read).
	Refused *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Flows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_egress_flows_total", Help: "Decided flows, by listener, verdict, reason and deciding rule.",
		}, []string{"listener", "verdict", "reason", "rule"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_egress_relayed_bytes_total", Help: "Bytes relayed, by direction (up: client to upstream, down: upstream to client).",
		}, []string{"direction"}),
		Tunnels: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_egress_active_tunnels", Help: "Relays carrying data now.",
		}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_egress_refused_connections_total", Help: "Transparent connections refused before a decision, by why (loop, original_dst).",
		}, []string{"why"}),
	}
	if reg != nil {
		reg.MustRegister(m.Flows, m.Bytes, m.Tunnels, m.Refused)
	}
	return m
}
