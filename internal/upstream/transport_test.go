package upstream

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Keep-alive connections are reused, and closed after IdleTimeout.
func TestKeepAliveAndIdleTimeout(t *testing.T) {
	body, _ := testImage(t)
	tests := []struct {
		name  string
		idle  time.Duration
		conns int32
	}{
		{name: "reused while fresh", idle: 10 * time.Second, conns: 1},
		{name: "closed when idle", idle: 50 * time.Millisecond, conns: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var conns atomic.Int32
			srv := httptest.NewUnstartedServer(manifestHandler(body, oci.MediaTypeImageManifest, true))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			c := newTestClient(t, srv.URL, func(o *Options) { o.IdleTimeout = tt.idle })
			for i := 0; i < 2; i++ {
				if _, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"}); err != nil {
					t.Fatal(err)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if got := conns.Load(); got != tt.conns {
				t.Errorf("connections = %d, want %d", got, tt.conns)
			}
		})
	}
}

func TestLatencyHistogram(t *testing.T) {
	body, _ := testImage(t)
	srv, _ := serve(t, manifestHandler(body, oci.MediaTypeImageManifest, true))
	reg := prometheus.NewRegistry()
	c := newTestClient(t, srv.URL, func(o *Options) { o.Metrics = NewMetrics(reg) })
	for i := 0; i < 3; i++ {
		if _, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"}); err != nil {
			t.Fatal(err)
		}
	}
	var m dto.Metric
	if err := c.m.Duration.WithLabelValues(testHost, "manifest").(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetHistogram().GetSampleCount(); got != 3 {
		t.Errorf("request_duration_seconds count = %d, want 3", got)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	for _, want := range []string{"airlock_upstream_requests_total", "airlock_upstream_request_duration_seconds", "airlock_upstream_received_bytes_total"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("registry lacks %s (has %v)", want, names)
		}
	}
}
