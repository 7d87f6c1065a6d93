package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/google/go-cmp/cmp"
)

func referrersIndex(t *testing.T, ds ...oci.Descriptor) []byte {
	t.Helper()
	b, err := json.Marshal(oci.Index{SchemaVersion: 2, MediaType: oci.MediaTypeImageIndex, Manifests: ds})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReferrers(t *testing.T) {
	subject := oci.SHA256.FromBytes([]byte("subject"))
	sig := oci.Descriptor{MediaType: oci.MediaTypeImageManifest, Digest: oci.SHA256.FromBytes([]byte("sig")), Size: 3, ArtifactType: "application/vnd.example.sig"}
	sbom := oci.Descriptor{MediaType: oci.MediaTypeImageManifest, Digest: oci.SHA256.FromBytes([]byte("sbom")), Size: 4, ArtifactType: "application/spdx+json"}
	idx := referrersIndex(t, sig, sbom)
	tag := "sha256-" + subject.Hex()

	api := func(filters bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v2/app/referrers/"+string(subject) {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", oci.MediaTypeImageIndex)
			if at := r.URL.Query().Get("artifactType"); at != "" && filters {
				w.Header().Set("OCI-Filters-Applied", "artifactType")
				w.Write(referrersIndex(t, sig))
				return
			}
			w.Write(idx)
		}
	}
	tagSchema := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/app/manifests/"+tag {
			manifestHandler(idx, oci.MediaTypeImageIndex, true)(w, r)
			return
		}
		ociError(w, http.StatusNotFound, oci.CodeNameUnknown)
	}
	tests := []struct {
		name         string
		handler      http.HandlerFunc
		artifactType string
		want         []oci.Descriptor
		wantPaths    []string
	}{
		{name: "API", handler: api(false), want: []oci.Descriptor{sig, sbom},
			wantPaths: []string{"/v2/app/referrers/" + string(subject)}},
		{name: "API filtering", handler: api(true), artifactType: sig.ArtifactType, want: []oci.Descriptor{sig}},
		{name: "API not filtering", handler: api(false), artifactType: sbom.ArtifactType, want: []oci.Descriptor{sbom}},
		{name: "tag schema fallback", handler: tagSchema, want: []oci.Descriptor{sig, sbom},
			wantPaths: []string{"/v2/app/referrers/" + string(subject), "/v2/app/manifests/" + tag}},
		{name: "tag schema filtered", handler: tagSchema, artifactType: sig.ArtifactType, want: []oci.Descriptor{sig}},
		{name: "no referrers at all", handler: func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, want: []oci.Descriptor{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, rec := serve(t, tt.handler)
			c := newTestClient(t, srv.URL, nil)
			got, err := c.Referrers(context.Background(), testHost, "app", subject, tt.artifactType)
			if err != nil {
				t.Fatalf("Referrers = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Referrers (-want +got):\n%s", diff)
			}
			if tt.wantPaths != nil {
				var paths []string
				for _, s := range rec.all() {
					paths = append(paths, s.Path)
				}
				if diff := cmp.Diff(tt.wantPaths, paths); diff != "" {
					t.Errorf("requests (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestReferrersRejects(t *testing.T) {
	subject := oci.SHA256.FromBytes([]byte("subject"))
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    error
	}{
		{"garbage", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{")) }, ErrBadResponse},
		{"bad descriptor digest", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"a/b","digest":"sha256:zz","size":1}]}`))
		}, ErrBadResponse},
		{"tag schema holds an image", func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				b, _ := testImage(t)
				manifestHandler(b, oci.MediaTypeImageManifest, true)(w, r)
				return
			}
			http.NotFound(w, r)
		}, ErrBadResponse},
		{"server error", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := serve(t, tt.handler)
			c := newTestClient(t, srv.URL, func(o *Options) { o.Retries = -1 })
			if _, err := c.Referrers(context.Background(), testHost, "app", subject, ""); !errors.Is(err, tt.want) {
				t.Errorf("Referrers = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFallbackTag(t *testing.T) {
	d256 := oci.SHA256.FromBytes([]byte("x"))
	d512 := oci.SHA512.FromBytes([]byte("x"))
	if got, want := fallbackTag(d256), "sha256-"+d256.Hex(); got != want {
		t.Errorf("fallbackTag(%s) = %s, want %s", d256, got, want)
	}
	if got, want := fallbackTag(d512), "sha512-"+d512.Hex()[:64]; got != want || !oci.ValidTag(got) {
		t.Errorf("fallbackTag(%s) = %s, want %s (a valid tag)", d512, got, want)
	}
}
