package upstream

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the upstream client, named airlock_upstream_*. The host label
// is the upstream host as the caller names it (the cache rules' hosts, so
// its cardinality is bounded by the configuration).
type Metrics struct {
	Requests      *prometheus.CounterVec   // host, kind (manifest, blob, referrers, token), code (HTTP status or "error")
	Duration      *prometheus.HistogramVec // host, kind: time to response headers of one HTTP exchange
	BytesReceived *prometheus.CounterVec   // host, kind: body bytes received
	Retries       *prometheus.CounterVec   // host, kind: attempts beyond the first
	TokenFetches  *prometheus.CounterVec   // host, result (ok, error)
}

// NewMetrics creates the collectors and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_upstream_requests_total",
			Help: "HTTP exchanges with upstream registries, by upstream host, kind and status code (\"error\" when no response came).",
		}, []string{"host", "kind", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "airlock_upstream_request_duration_seconds",
			Help:    "Time from sending a request to an upstream registry to its response headers.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"host", "kind"}),
		BytesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_upstream_received_bytes_total",
			Help: "Manifest, blob, referrers and token body bytes received from upstream registries.",
		}, []string{"host", "kind"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_upstream_retries_total",
			Help: "Requests to upstream registries retried after a connection error, 5xx or 429.",
		}, []string{"host", "kind"}),
		TokenFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_upstream_token_fetches_total",
			Help: "Bearer tokens requested from upstream token realms, by result.",
		}, []string{"host", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Duration, m.BytesReceived, m.Retries, m.TokenFetches)
	}
	return m
}
