package egress

import (
	"sync"

	"github.com/airlockdev/airlock/internal/policy"
	"github.com/prometheus/client_golang/prometheus"
)

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
	// UDPFlows is the number of UDP flows relaying now (L4 and DNAT).
	UDPFlows prometheus.Gauge
	// UDPDropped counts datagrams dropped before or outside a flow, by why:
	// denied (a datagram of a remembered deny, or of a deny not recorded
	// because its client and destination were lately), source_limit (the
	// client holds gateway.udpMaxFlowsPerSource flows, none idle),
	// table_full (the listener holds gateway.udpMaxFlows flows and none may
	// give way), oversized, original_dst (no original destination in the
	// datagram's control data), loop (sent to the L4 listener itself), send
	// (the kernel refused to send it on).
	UDPDropped *prometheus.CounterVec
	// UDPEvicted counts UDP flows ended to make room for a new flow, by
	// why: source_limit (the client's own least recently used flow, idle),
	// table_full (a flow of the heaviest source, or an idle one).
	UDPEvicted *prometheus.CounterVec

	// Per-flow counters, looked up once per label set rather than hashed
	// per flow (WithLabelValues).
	bytesUp, bytesDown prometheus.Counter
	flows              sync.Map // flowKey → prometheus.Counter
}

// flowKey is one label set of Flows.
type flowKey struct {
	listener                string
	verdict                 policy.Verdict
	reason                  policy.Reason
	group, collection, rule string
}

// flowCounter returns Flows' counter for a flow of listener decided by d
// (label rule: "group/collection/rule", empty when no rule decided).
func (m *Metrics) flowCounter(listener string, d policy.Decision) prometheus.Counter {
	k := flowKey{listener, d.Verdict, d.Reason, d.Group, d.Collection, d.Rule}
	if c, ok := m.flows.Load(k); ok {
		return c.(prometheus.Counter)
	}
	rule := ""
	if d.Rule != "" {
		rule = d.Group + "/" + d.Collection + "/" + d.Rule
	}
	c := m.Flows.WithLabelValues(listener, string(d.Verdict), string(d.Reason), rule)
	m.flows.Store(k, c)
	return c
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
		UDPFlows: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_egress_udp_flows", Help: "UDP flows relaying now (L4 and DNAT).",
		}),
		UDPDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_egress_udp_dropped_datagrams_total", Help: "UDP datagrams dropped, by why (denied, source_limit, table_full, oversized, original_dst, loop, send).",
		}, []string{"why"}),
		UDPEvicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_egress_udp_evicted_flows_total", Help: "UDP flows ended to make room for a new one, by why (source_limit, table_full).",
		}, []string{"why"}),
	}
	m.bytesUp = m.Bytes.WithLabelValues("up")
	m.bytesDown = m.Bytes.WithLabelValues("down")
	if reg != nil {
		reg.MustRegister(m.Flows, m.Bytes, m.Tunnels, m.Refused, m.UDPFlows, m.UDPDropped, m.UDPEvicted)
	}
	return m
}
