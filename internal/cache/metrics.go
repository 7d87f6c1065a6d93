package cache

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	hits           *prometheus.CounterVec // kind: manifest | blob
	misses         *prometheus.CounterVec
	coalesced      *prometheus.CounterVec
	upstreamBytes  prometheus.Counter
	stale          prometheus.Counter
	verifyFailures prometheus.Counter
	cachedBytes    prometheus.Gauge
	evictedBytes   prometheus.Counter
	fillLeases     *prometheus.CounterVec // kind, result
	fillLeaseLost  *prometheus.CounterVec // kind
	relayFailures  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_cache_hits_total", Help: "Requests for cache repositories served from local storage, by kind (manifest, blob).",
		}, []string{"kind"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_cache_misses_total", Help: "Upstream fetches started, by kind (manifest, blob).",
		}, []string{"kind"}),
		coalesced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_cache_coalesced_waiters_total", Help: "Requests that joined a fetch already under way instead of starting one, by kind.",
		}, []string{"kind"}),
		upstreamBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_cache_upstream_bytes_total", Help: "Bytes fetched from upstream registries.",
		}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_cache_stale_serves_total", Help: "Cached tags served without revalidation because the upstream was unreachable.",
		}),
		verifyFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_cache_verification_failures_total", Help: "Upstream content whose digest did not match; never cached.",
		}),
		cachedBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_cache_cached_bytes", Help: "Bytes of cached blobs, as of the last quota check (only with a quota).",
		}),
		evictedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_cache_evicted_bytes_total", Help: "Bytes freed by quota eviction.",
		}),
		fillLeases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_cache_fill_leases_total",
			Help: "Upstream fetches coordinated across replicas, by kind (blob, manifest) and result: held (fetched here under a cluster-wide lease), local (fetched here under a process-local lease: redis unreachable), waited (another replica fetched it; read from storage), relayed (another replica fetched it; streamed from that replica while it did), took_over (another replica's fetch ended without it: fetched here), none (gave up waiting: fetched without a lease).",
		}, []string{"kind", "result"}),
		fillLeaseLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_cache_fill_lease_lost_total", Help: "Upstream fetches that lost their cluster lease and went on (another replica may fetch the same content meanwhile), by kind.",
		}, []string{"kind"}),
		relayFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_cache_fill_relay_failures_total", Help: "Blobs this replica tried to stream from the replica fetching them and could not (fell back to waiting for its commit, or to fetching them here).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.hits, m.misses, m.coalesced, m.upstreamBytes, m.stale, m.verifyFailures, m.cachedBytes, m.evictedBytes, m.fillLeases, m.fillLeaseLost, m.relayFailures)
	}
	return m
}
