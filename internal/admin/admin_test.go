package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "airlock_test_total", Help: "x"})
	reg.MustRegister(c)
	c.Add(3)
	s := New(Config{}, reg, nil)
	h := s.Handler()

	if code, body := get(t, h, "/metrics"); code != 200 || !strings.Contains(body, "airlock_test_total 3") {
		t.Errorf("GET /metrics = %d %q, want 200 with the counter", code, body)
	}
	if code, _ := get(t, h, "/healthz"); code != 200 {
		t.Errorf("GET /healthz = %d, want 200", code)
	}
	s.SetReady("registry", "starting")
	if code, body := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, "registry: starting") {
		t.Errorf("GET /readyz while starting = %d %q, want 503 naming the component", code, body)
	}
	s.SetReady("registry", "")
	if code, _ := get(t, h, "/readyz"); code != 200 {
		t.Errorf("GET /readyz when ready = %d, want 200", code)
	}
}

// A degraded component keeps /readyz at 200 (a load balancer must not drop
// every replica when their shared Redis is down) and names the reason; a
// component not ready still answers 503, with the degraded reasons too.
func TestReadyzDegraded(t *testing.T) {
	s := New(Config{}, prometheus.NewRegistry(), nil)
	h := s.Handler()
	s.SetDegraded("cluster", "redis unreachable: dial tcp: connection refused")
	code, body := get(t, h, "/readyz")
	if code != 200 || body != "degraded\ncluster: redis unreachable: dial tcp: connection refused\n" {
		t.Errorf("GET /readyz degraded = %d %q, want 200 with the reason", code, body)
	}
	s.SetReady("storage reachable", "azblob: connection refused")
	if code, body := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, "storage reachable") || !strings.Contains(body, "cluster: redis") {
		t.Errorf("GET /readyz not ready and degraded = %d %q, want 503 with both", code, body)
	}
	s.SetReady("storage reachable", "")
	s.SetDegraded("cluster", "")
	if code, body := get(t, h, "/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("GET /readyz recovered = %d %q, want 200 ready", code, body)
	}
}
