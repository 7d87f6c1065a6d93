package upstream

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/oci"
)

// Health counts operations per host; a 404 is not an error, a 503 that
// outlasts the retries is, with its text and time.
func TestHealth(t *testing.T) {
	body, _ := testImage(t, "layer")
	ok := manifestHandler(body, oci.MediaTypeImageManifest, true)
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/manifests/missing"):
			w.WriteHeader(http.StatusNotFound)
		case strings.HasSuffix(r.URL.Path, "/manifests/broken"):
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			ok(w, r)
		}
	})
	c := newTestClient(t, srv.URL, func(o *Options) { o.Retries = -1 })
	if h := c.Health(); len(h) != 0 {
		t.Fatalf("Health before any request = %+v, want none", h)
	}
	ctx := context.Background()
	if _, err := c.GetManifest(ctx, testHost, "team/app", oci.Reference{Tag: "v1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetManifest(ctx, testHost, "team/app", oci.Reference{Tag: "missing"}); err == nil {
		t.Fatal("GetManifest(missing) = nil error")
	}
	if _, err := c.GetManifest(ctx, testHost, "team/app", oci.Reference{Tag: "broken"}); err == nil {
		t.Fatal("GetManifest(broken) = nil error")
	}
	h := c.Health()
	if len(h) != 1 || h[0].Host != testHost || h[0].Requests != 3 || h[0].Errors != 1 {
		t.Fatalf("Health = %+v, want %s with 3 requests, 1 error", h, testHost)
	}
	if !strings.Contains(h[0].LastError, "broken") || h[0].LastErrorAt.IsZero() {
		t.Errorf("last error = %q at %v, want the 503 of broken with a time", h[0].LastError, h[0].LastErrorAt)
	}
}
