package registry

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the registry, named airlock_registry_*.
type Metrics struct {
	Requests      *prometheus.CounterVec // route, method, code
	BytesSent     prometheus.Counter
	BytesReceived prometheus.Counter
	UploadsPurged prometheus.Counter
	AuthFailures  prometheus.Counter
}

// NewMetrics creates the collectors and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_registry_requests_total", Help: "HTTP requests answered, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		BytesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_registry_sent_bytes_total", Help: "Response body bytes sent.",
		}),
		BytesReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_registry_received_bytes_total", Help: "Blob and manifest bytes received in uploads.",
		}),
		UploadsPurged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_registry_uploads_purged_total", Help: "Idle uploads removed after uploadTTL.",
		}),
		AuthFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_registry_auth_failures_total", Help: "Requests with wrong credentials.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.BytesSent, m.BytesReceived, m.UploadsPurged, m.AuthFailures)
	}
	return m
}
