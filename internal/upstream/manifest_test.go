package upstream

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/google/go-cmp/cmp"
)

func TestGetManifestByTagAndDigest(t *testing.T) {
	body, dg := testImage(t, "layer")
	srv, rec := serve(t, manifestHandler(body, oci.MediaTypeImageManifest, true))
	c := newTestClient(t, srv.URL, nil)
	ctx := context.Background()
	for _, ref := range []oci.Reference{{Tag: "v1"}, {Digest: dg}} {
		m, err := c.GetManifest(ctx, testHost, "team/app", ref)
		if err != nil {
			t.Fatalf("GetManifest(%s) = %v", ref, err)
		}
		want := oci.Descriptor{MediaType: oci.MediaTypeImageManifest, Digest: dg, Size: int64(len(body))}
		if diff := cmp.Diff(want, m.Descriptor); diff != "" {
			t.Errorf("GetManifest(%s).Descriptor (-want +got):\n%s", ref, diff)
		}
		if !bytes.Equal(m.Body, body) || m.Parsed == nil || len(m.Parsed.Layers) != 1 {
			t.Errorf("GetManifest(%s) body/parsed wrong: %d bytes, parsed %+v", ref, len(m.Body), m.Parsed)
		}
	}
	if got := rec.count(http.MethodGet, "/v2/team/app/manifests/v1"); got != 1 {
		t.Errorf("GETs of manifests/v1 = %d, want 1", got)
	}
	if got := counter(t, c.m.Requests, testHost, "manifest", "200"); got != 2 {
		t.Errorf("requests_total{manifest,200} = %v, want 2", got)
	}
	if got := counter(t, c.m.BytesReceived, testHost, "manifest"); got != float64(2*len(body)) {
		t.Errorf("received_bytes_total{manifest} = %v, want %d", got, 2*len(body))
	}
}

func TestGetManifestRejects(t *testing.T) {
	body, dg := testImage(t, "layer")
	other, otherDigest := testImage(t, "other")
	huge := append([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":"`), bytes.Repeat([]byte("a"), oci.MaxManifestSize)...)
	huge = append(huge, []byte(`"}}`)...)
	tests := []struct {
		name    string
		ref     oci.Reference
		handler http.HandlerFunc
		kind    error
		reason  string
	}{
		{
			name: "body does not match the requested digest",
			ref:  oci.Reference{Digest: dg},
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", oci.MediaTypeImageManifest)
				w.Write(other)
			},
			kind: ErrBadResponse, reason: reasonDigest,
		},
		{
			name: "body does not match Docker-Content-Digest",
			ref:  oci.Reference{Tag: "v1"},
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", oci.MediaTypeImageManifest)
				w.Header().Set("Docker-Content-Digest", string(dg))
				w.Write(other)
			},
			kind: ErrBadResponse, reason: reasonDigest,
		},
		{
			name: "Docker-Content-Digest contradicts the requested digest",
			ref:  oci.Reference{Digest: dg},
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Docker-Content-Digest", string(otherDigest))
				w.Write(body)
			},
			kind: ErrBadResponse, reason: reasonDigest,
		},
		{
			name: "malformed Docker-Content-Digest",
			ref:  oci.Reference{Tag: "v1"},
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Docker-Content-Digest", "sha256:xyz")
				w.Write(body)
			},
			kind: ErrBadResponse, reason: reasonHeader,
		},
		{
			name: "oversize Content-Length",
			ref:  oci.Reference{Tag: "v1"},
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", itoa(len(huge)))
				w.Write(huge)
			},
			kind: ErrBadResponse, reason: reasonTooLarge,
		},
		{
			name: "oversize chunked body",
			ref:  oci.Reference{Tag: "v1"},
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", oci.MediaTypeImageManifest)
				for i := 0; i < len(huge); i += 1 << 16 {
					w.Write(huge[i:min(i+1<<16, len(huge))])
					w.(http.Flusher).Flush()
				}
			},
			kind: ErrBadResponse, reason: reasonTooLarge,
		},
		{
			name: "not a manifest",
			ref:  oci.Reference{Tag: "v1"},
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.Write([]byte("<html>login</html>"))
			},
			kind: ErrBadResponse, reason: reasonManifest,
		},
		{
			name: "not found",
			ref:  oci.Reference{Tag: "v1"},
			handler: func(w http.ResponseWriter, r *http.Request) {
				ociError(w, http.StatusNotFound, oci.CodeManifestUnknown)
			},
			kind: ErrNotFound,
		},
		{
			name:    "forbidden",
			ref:     oci.Reference{Tag: "v1"},
			handler: func(w http.ResponseWriter, r *http.Request) { ociError(w, http.StatusForbidden, oci.CodeDenied) },
			kind:    ErrUnauthorized,
		},
		{
			name:    "bad request",
			ref:     oci.Reference{Tag: "v1"},
			handler: func(w http.ResponseWriter, r *http.Request) { ociError(w, http.StatusBadRequest, oci.CodeNameInvalid) },
			kind:    ErrBadResponse, reason: reasonStatus,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, rec := serve(t, tt.handler)
			c := newTestClient(t, srv.URL, nil)
			m, err := c.GetManifest(context.Background(), testHost, "app", tt.ref)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("GetManifest = %v, want %v", err, tt.kind)
			}
			var e *Error
			if !errors.As(err, &e) || e.Reason != tt.reason {
				t.Errorf("GetManifest error reason = %q, want %q (%v)", e.Reason, tt.reason, err)
			}
			if m.Body != nil {
				t.Errorf("GetManifest returned %d bytes with an error", len(m.Body))
			}
			if n := len(rec.all()); n != 1 {
				t.Errorf("upstream saw %d requests, want 1 (not retried)", n)
			}
		})
	}
}

func TestHeadManifest(t *testing.T) {
	body, dg := testImage(t, "layer")
	t.Run("from headers", func(t *testing.T) {
		srv, rec := serve(t, manifestHandler(body, oci.MediaTypeImageManifest, true))
		c := newTestClient(t, srv.URL, nil)
		d, err := c.HeadManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		want := oci.Descriptor{MediaType: oci.MediaTypeImageManifest, Digest: dg, Size: int64(len(body))}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Errorf("HeadManifest (-want +got):\n%s", diff)
		}
		if got := rec.all(); len(got) != 1 || got[0].Method != http.MethodHead {
			t.Errorf("requests = %+v, want one HEAD", got)
		}
	})
	t.Run("falls back to GET without Docker-Content-Digest", func(t *testing.T) {
		srv, rec := serve(t, manifestHandler(body, oci.MediaTypeImageManifest, false))
		c := newTestClient(t, srv.URL, nil)
		d, err := c.HeadManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		if d.Digest != dg {
			t.Errorf("HeadManifest digest = %s, want %s", d.Digest, dg)
		}
		if rec.count(http.MethodHead, "/v2/app/manifests/v1") != 1 || rec.count(http.MethodGet, "/v2/app/manifests/v1") != 1 {
			t.Errorf("requests = %+v, want a HEAD then a GET", rec.all())
		}
	})
	t.Run("digest mismatch", func(t *testing.T) {
		srv, _ := serve(t, manifestHandler(body, oci.MediaTypeImageManifest, true))
		c := newTestClient(t, srv.URL, nil)
		_, other := testImage(t, "other")
		_, err := c.HeadManifest(context.Background(), testHost, "app", oci.Reference{Digest: other})
		if !errors.Is(err, ErrBadResponse) {
			t.Errorf("HeadManifest(other digest) = %v, want ErrBadResponse", err)
		}
	})
	t.Run("not found", func(t *testing.T) {
		srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) })
		c := newTestClient(t, srv.URL, nil)
		_, err := c.HeadManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("HeadManifest = %v, want ErrNotFound", err)
		}
	})
}

func TestDockerHubNormalization(t *testing.T) {
	body, _ := testImage(t)
	srv, rec := serve(t, manifestHandler(body, oci.MediaTypeImageManifest, true))
	c := newTestClient(t, srv.URL, func(o *Options) { o.Endpoints = map[string]Endpoint{"docker.io": {URL: srv.URL}} })
	for _, host := range []string{"docker.io", "Docker.IO", "registry-1.docker.io", "index.docker.io"} {
		if _, err := c.GetManifest(context.Background(), host, "alpine", oci.Reference{Tag: "3"}); err != nil {
			t.Fatalf("GetManifest(%s, alpine) = %v", host, err)
		}
	}
	if got := rec.count(http.MethodGet, "/v2/library/alpine/manifests/3"); got != 4 {
		t.Errorf("GETs of /v2/library/alpine/manifests/3 = %d, want 4 (%+v)", got, rec.all())
	}
}

func TestInvalidRequests(t *testing.T) {
	srv, rec := serve(t, func(w http.ResponseWriter, r *http.Request) {})
	c := newTestClient(t, srv.URL, nil)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{"host with a path", func() error {
			_, err := c.GetManifest(ctx, "evil.test/x?", "app", oci.Reference{Tag: "v1"})
			return err
		}},
		{"repository with ..", func() error {
			_, err := c.GetManifest(ctx, testHost, "../../admin", oci.Reference{Tag: "v1"})
			return err
		}},
		{"bad tag", func() error {
			_, err := c.GetManifest(ctx, testHost, "app", oci.Reference{Tag: "../x"})
			return err
		}},
		{"bad blob digest", func() error {
			_, _, err := c.GetBlob(ctx, testHost, "app", "sha256:../../x", 0)
			return err
		}},
		{"negative offset", func() error {
			_, _, err := c.GetBlob(ctx, testHost, "app", oci.SHA256.FromBytes(nil), -1)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("call = %v, want ErrInvalidRequest", err)
			}
		})
	}
	if n := len(rec.all()); n != 0 {
		t.Errorf("upstream saw %d requests, want none", n)
	}
}
