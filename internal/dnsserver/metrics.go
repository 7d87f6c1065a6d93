package dnsserver

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the DNS server, named airlock_dnsserver_*.
type Metrics struct {
	Queries         *prometheus.CounterVec   // verdict, reason
	CacheHits       prometheus.Counter       // fresh answers from the cache
	CacheMisses     prometheus.Counter       // answers that needed a forwarder
	StaleAnswers    prometheus.Counter       // stale answers served because every forwarder failed
	ForwardDuration *prometheus.HistogramVec // result (ok, error): one exchange with one forwarder
	Retransmits     prometheus.Counter       // UDP queries sent again to a forwarder that had not answered yet
	Observations    prometheus.Gauge         // (address, name) pairs held for the gateway
}

// NewMetrics creates the collectors and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_dnsserver_queries_total", Help: "DNS questions answered, by verdict and reason.",
		}, []string{"verdict", "reason"}),
		CacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_dnsserver_cache_hits_total", Help: "Allowed questions answered from a fresh cache entry.",
		}),
		CacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_dnsserver_cache_misses_total", Help: "Allowed questions that needed a forwarder.",
		}),
		StaleAnswers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_dnsserver_stale_answers_total", Help: "Expired answers served because every forwarder failed.",
		}),
		ForwardDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "airlock_dnsserver_forwarder_duration_seconds",
			Help:    "Time of one exchange with one forwarder, by result.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"result"}),
		Retransmits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_dnsserver_forwarder_retransmits_total", Help: "UDP queries sent again to a forwarder that had not answered yet.",
		}),
		Observations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_dnsserver_observations", Help: "Address-to-name observations held for FQDN network rules.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Queries, m.CacheHits, m.CacheMisses, m.StaleAnswers, m.ForwardDuration, m.Retransmits, m.Observations)
	}
	return m
}

// shareMetrics are those of observations shared through the cluster
// (Observations.Share), named airlock_dnsserver_observations_*.
type shareMetrics struct {
	shared  *prometheus.CounterVec // result: published | queue_full | unavailable
	lookups *prometheus.CounterVec // result: hit | miss | throttled | unavailable | error
	bad     prometheus.Counter     // members read from Redis that are no name or no expiry
}

func newShareMetrics(reg prometheus.Registerer) *shareMetrics {
	m := &shareMetrics{
		shared: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_dnsserver_observations_shared_total",
			Help: "Address-name pairs this replica's DNS answered, by what became of sharing them with the other replicas (published; dropped: queue_full, unavailable while Redis is away).",
		}, []string{"result"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_dnsserver_observations_lookups_total",
			Help: "Gateway look-ups of other replicas' observations for an address this replica's did not allow, by result (hit: names learnt; miss: none new; throttled: the address was asked about within a second; unavailable: Redis is away, local only; error: the read failed).",
		}, []string{"result"}),
		bad: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_dnsserver_observations_shared_bad_total",
			Help: "Members read from Redis that are no host name or no expiry, skipped.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.shared, m.lookups, m.bad)
	}
	return m
}
