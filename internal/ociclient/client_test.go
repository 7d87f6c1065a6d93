package ociclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/oci"
)

const manifestBody = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`

// registry serves one manifest under the tag "1" and by digest; the tag
// "lying" answers with a Docker-Content-Digest of other bytes, and the
// digest of "other" with the manifest's bytes.
func registry(t *testing.T) (*Client, *[]*http.Request) {
	t.Helper()
	var seen []*http.Request
	dg := string(oci.Canonical.FromBytes([]byte(manifestBody)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r)
		switch r.URL.Path {
		case "/v2/lib/a/manifests/1", "/v2/lib/a/manifests/" + dg:
			w.Header().Set("Docker-Content-Digest", dg)
			w.Write([]byte(manifestBody))
		case "/v2/lib/a/manifests/" + string(oci.Canonical.FromBytes([]byte("other"))):
			w.Write([]byte(manifestBody)) // the wrong bytes for that digest
		case "/v2/lib/a/manifests/lying":
			w.Header().Set("Docker-Content-Digest", string(oci.Canonical.FromBytes([]byte("other"))))
			w.Write([]byte(manifestBody))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`))
		}
	}))
	t.Cleanup(srv.Close)
	api, err := url.Parse(srv.URL + "/v2")
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{API: api, HTTP: srv.Client(), Namespace: "mcr.microsoft.com", Header: http.Header{"User-Agent": {"test"}}, Username: "u", Password: "p"}
	return c, &seen
}

func TestManifest(t *testing.T) {
	c, seen := registry(t)
	ctx := context.Background()
	want := oci.Canonical.FromBytes([]byte(manifestBody))
	for _, ref := range []string{"1", string(want)} {
		m, err := c.Manifest(ctx, "lib/a", ref)
		if err != nil {
			t.Fatalf("Manifest(%s): %v", ref, err)
		}
		if m.Digest != want || string(m.Body) != manifestBody {
			t.Errorf("Manifest(%s) = digest %s, want %s", ref, m.Digest, want)
		}
	}
	r := (*seen)[0]
	if r.URL.Query().Get("ns") != "mcr.microsoft.com" || r.Header.Get("Accept") != oci.ManifestAccept || r.Header.Get("User-Agent") != "test" {
		t.Errorf("request %s: ns, Accept or User-Agent missing: %v", r.URL, r.Header)
	}
	if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
		t.Errorf("request without the Basic credentials")
	}
}

func TestManifestDigestMismatch(t *testing.T) {
	c, _ := registry(t)
	ctx := context.Background()
	other := string(oci.Canonical.FromBytes([]byte("other")))
	var de *DigestError
	if _, err := c.Manifest(ctx, "lib/a", "lying"); !errors.As(err, &de) || de.Header == "" || !strings.Contains(err.Error(), "Docker-Content-Digest") {
		t.Errorf("a lying Docker-Content-Digest: err = %v, want a *DigestError naming the header", err)
	}
	if _, err := c.Manifest(ctx, "lib/a", other); !errors.As(err, &de) || de.Header != "" || !strings.Contains(err.Error(), "the body's digest is") {
		t.Errorf("Manifest(%s) of other bytes: err = %v, want a *DigestError", other, err)
	}
}

func TestResponseError(t *testing.T) {
	c, _ := registry(t)
	_, err := c.Manifest(context.Background(), "lib/missing", "1")
	var re *ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a *ResponseError", err)
	}
	if got := re.RegistryMessage(); got != "404 Not Found MANIFEST_UNKNOWN: manifest unknown" {
		t.Errorf("RegistryMessage() = %q", got)
	}
	if !strings.HasPrefix(err.Error(), "GET http://") || !strings.Contains(err.Error(), "HTTP 404 Not Found") {
		t.Errorf("Error() = %q, want the method, URL and status", err.Error())
	}
}

func TestBlobRejectsABadDigest(t *testing.T) {
	c, seen := registry(t)
	if _, err := c.Blob(context.Background(), "lib/a", "sha256:xyz"); err == nil {
		t.Error("Blob with a malformed digest succeeded")
	}
	if len(*seen) != 0 {
		t.Errorf("a malformed digest reached the registry")
	}
}
