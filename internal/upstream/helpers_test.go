package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// testHost is the upstream name tests use; Endpoints point it at a
// loopback httptest server, so it is never looked up in DNS.
const testHost = "upstream.test"

// recorder wraps a test handler and keeps what each request carried.
type recorder struct {
	mu   sync.Mutex
	reqs []seen
	h    http.HandlerFunc
}

type seen struct {
	Method, Path, Query, Auth, Range string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.reqs = append(r.reqs, seen{req.Method, req.URL.Path, req.URL.RawQuery, req.Header.Get("Authorization"), req.Header.Get("Range")})
	r.mu.Unlock()
	r.h(w, req)
}

func (r *recorder) all() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.reqs...)
}

// count returns how many requests had this path (any method when method is "").
func (r *recorder) count(method, path string) int {
	n := 0
	for _, s := range r.all() {
		if (method == "" || s.Method == method) && s.Path == path {
			n++
		}
	}
	return n
}

// serve starts a loopback server running h and records its requests.
func serve(t *testing.T, h http.HandlerFunc) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{h: h}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return srv, rec
}

// newTLSServer starts a loopback HTTPS server (a test certificate; trust
// it with writeCA).
func newTLSServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// newTestClient returns a client whose testHost is srvURL, with short
// timeouts; mod adjusts the options.
func newTestClient(t *testing.T, srvURL string, mod func(*Options)) *Client {
	t.Helper()
	opt := Options{
		Endpoints:   map[string]Endpoint{testHost: {URL: srvURL}},
		Timeout:     5 * time.Second,
		Backoff:     10 * time.Millisecond,
		Metrics:     NewMetrics(prometheus.NewRegistry()),
		DialContext: loopbackDial,
	}
	if mod != nil {
		mod(&opt)
	}
	c, err := New(opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// loopbackDial dials only loopback IP literals, so no test can ever
// resolve a name in the real DNS or leave the machine.
func loopbackDial(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("test dialer: refusing %q (only loopback IP literals)", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// testImage returns a small valid OCI image manifest and its digest.
func testImage(t *testing.T, layers ...string) ([]byte, oci.Digest) {
	t.Helper()
	cfg := []byte("{}")
	m := oci.Manifest{
		SchemaVersion: 2,
		MediaType:     oci.MediaTypeImageManifest,
		Config:        &oci.Descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: oci.SHA256.FromBytes(cfg), Size: int64(len(cfg))},
		Layers:        []oci.Descriptor{},
	}
	for _, l := range layers {
		m.Layers = append(m.Layers, oci.Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: oci.SHA256.FromBytes([]byte(l)), Size: int64(len(l))})
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b, oci.SHA256.FromBytes(b)
}

// manifestHandler serves body as a manifest at every manifests/ path.
func manifestHandler(body []byte, mediaType string, withDigest bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/manifests/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", mediaType)
		if withDigest {
			w.Header().Set("Docker-Content-Digest", string(oci.SHA256.FromBytes(body)))
		}
		w.Header().Set("Content-Length", itoa(len(body)))
		if r.Method == http.MethodHead {
			return
		}
		w.Write(body)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// counter reads one counter of a vector.
func counter(t *testing.T, v *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	var m dto.Metric
	if err := v.WithLabelValues(labels...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// ociError writes an OCI error document.
func ociError(w http.ResponseWriter, status int, code oci.Code) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(oci.Body(oci.NewError(code, "")))
}
