package cluster

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	up          prometheus.Gauge
	transitions prometheus.Counter
	errors      *prometheus.CounterVec // op
	leases      *prometheus.CounterVec // result: acquired | busy | local | lost
	peers       prometheus.Gauge
	mismatch    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_cluster_redis_up", Help: "1 while Redis answers; 0 while it is configured and unreachable (coordination is local, degraded).",
		}),
		transitions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_cluster_degraded_transitions_total", Help: "Times this replica lost Redis and fell back to local coordination.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_cluster_redis_errors_total", Help: "Failed Redis calls, by operation.",
		}, []string{"op"}),
		leases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_cluster_leases_total", Help: "Lease attempts and losses, by result (acquired: through Redis; local: process-local while Redis is down; busy: held elsewhere; lost: renewal failed past expiry).",
		}, []string{"result"}),
		peers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_cluster_peers", Help: "Other live replicas seen in Redis.",
		}),
		mismatch: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_cluster_version_mismatch", Help: "1 while some live replica runs a different config or policy version.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.up, m.transitions, m.errors, m.leases, m.peers, m.mismatch)
	}
	return m
}
