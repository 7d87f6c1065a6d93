//go:build e2e

package e2e

import (
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	atSBOM      = "application/vnd.example.sbom.v1+json"
	atSignature = "application/vnd.example.signature.v1"
	mtOwnConfig = "application/vnd.example.config.v1+json"
)

// rawManifest is a manifest pushed byte for byte with remote.Put.
type rawManifest struct {
	body []byte
	mt   types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.body, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// TestReferrers: artifacts (image manifests with a subject) pushed with
// go-containerregistry are listed by the referrers API, with the
// artifactType filter applied by the registry, also for a subject that did
// not exist when the referrer was pushed. The tag-schema fallback is turned
// off, so nothing here passes on a registry without the referrers API.
func TestReferrers(t *testing.T) {
	r := startTarget(t, regOptions{anonymousPull: true, users: map[string]string{"ci": "ci-e2e-password"}})
	c := newOCIClient(r)
	opts := []remote.Option{
		remote.WithAuth(&authn.Basic{Username: r.user, Password: r.password}),
		remote.WithTransport(r.client().Transport),
		remote.WithReferrersTagFallback(false),
	}
	repo, err := name.NewRepository(r.addr+"/e2e/referrers", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}

	subject := buildImage(t, "amd64", 7, 1, 4096)
	if err := remote.Write(repo.Tag("v1"), subject, opts...); err != nil {
		t.Fatalf("push subject image: %v", err)
	}
	subjectDesc := descriptorOf(t, subject)

	// Blobs every artifact uses.
	emptyCfg := static.NewLayer([]byte("{}"), mtEmpty)
	ownCfg := static.NewLayer([]byte(`{"tool":"e2e"}`), mtOwnConfig)
	sbom := static.NewLayer([]byte(`{"spdxVersion":"SPDX-2.3","name":"e2e"}`), atSBOM)
	sig := static.NewLayer([]byte("signature bytes"), atSignature)
	for _, l := range []v1.Layer{emptyCfg, ownCfg, sbom, sig} {
		if err := remote.WriteLayer(repo, l, opts...); err != nil {
			t.Fatalf("push artifact blob: %v", err)
		}
	}

	sbomArt := artifactManifest(t, atSBOM, emptyCfg, sbom, subjectDesc, map[string]string{"org.example.kind": "sbom"})
	sigArt := artifactManifest(t, atSignature, emptyCfg, sig, subjectDesc, nil)
	// No artifactType: the referrers API reports config.mediaType instead.
	cfgArt := artifactManifest(t, "", ownCfg, sbom, subjectDesc, nil)

	if err := remote.Put(repo.Digest(sha256Digest(sbomArt)), rawManifest{sbomArt, types.OCIManifestSchema1}, opts...); err != nil {
		t.Fatalf("push sbom artifact with remote.Put: %v", err)
	}
	// One push by hand, to see the OCI-Subject header.
	resp := c.do(t, http.MethodPut, "/v2/e2e/referrers/manifests/"+sha256Digest(sigArt), http.Header{"Content-Type": {mtManifest}}, sigArt)
	if resp.status != http.StatusCreated {
		t.Fatalf("PUT signature artifact = %d %s, want 201", resp.status, resp.body)
	}
	if got := resp.header.Get("OCI-Subject"); got != subjectDesc.Digest.String() {
		t.Errorf("PUT of a manifest with a subject: OCI-Subject = %q, want %s", got, subjectDesc.Digest)
	}
	if err := remote.Put(repo.Tag("cfg-artifact"), rawManifest{cfgArt, types.OCIManifestSchema1}, opts...); err != nil {
		t.Fatalf("push config-typed artifact: %v", err)
	}

	subjectRef := repo.Digest(subjectDesc.Digest.String())
	t.Run("all", func(t *testing.T) {
		idx, err := remote.Referrers(subjectRef, opts...)
		if err != nil {
			t.Fatalf("remote.Referrers(%s) = %v", subjectRef, err)
		}
		want := map[string]string{
			sha256Digest(sbomArt): atSBOM,
			sha256Digest(sigArt):  atSignature,
			sha256Digest(cfgArt):  mtOwnConfig,
		}
		got := referrerTypes(t, idx)
		if !maps.Equal(got, want) {
			t.Errorf("remote.Referrers(%s) = %v, want %v", subjectRef, got, want)
		}
		im, _ := idx.IndexManifest()
		for _, d := range im.Manifests {
			if d.Digest.String() == sha256Digest(sbomArt) {
				if d.Annotations["org.example.kind"] != "sbom" || d.Size != int64(len(sbomArt)) || d.MediaType != types.OCIManifestSchema1 {
					t.Errorf("sbom referrer descriptor = %+v, want size %d, OCI manifest media type, annotation org.example.kind=sbom", d, len(sbomArt))
				}
			}
		}
	})

	t.Run("artifactType filter", func(t *testing.T) {
		idx, err := remote.Referrers(subjectRef, append(opts, remote.WithFilter("artifactType", atSBOM))...)
		if err != nil {
			t.Fatalf("remote.Referrers(%s, artifactType=%s) = %v", subjectRef, atSBOM, err)
		}
		if got, want := referrerTypes(t, idx), map[string]string{sha256Digest(sbomArt): atSBOM}; !maps.Equal(got, want) {
			t.Errorf("remote.Referrers(artifactType=%s) = %v, want %v", atSBOM, got, want)
		}
		// go-containerregistry filters on the client too; check that the
		// registry applied the filter and says so.
		resp := c.do(t, http.MethodGet, "/v2/e2e/referrers/referrers/"+subjectDesc.Digest.String()+"?artifactType="+strings.ReplaceAll(atSBOM, "+", "%2B"), nil, nil)
		if resp.status != http.StatusOK {
			t.Fatalf("GET referrers?artifactType = %d %s, want 200", resp.status, resp.body)
		}
		if got := resp.header.Get("OCI-Filters-Applied"); got != "artifactType" {
			t.Errorf("GET referrers?artifactType: OCI-Filters-Applied = %q, want artifactType", got)
		}
		if got := resp.header.Get("Content-Type"); got != mtIndex {
			t.Errorf("GET referrers: Content-Type = %q, want %s", got, mtIndex)
		}
		var im v1.IndexManifest
		if err := json.Unmarshal(resp.body, &im); err != nil {
			t.Fatalf("referrers body %q: %v", resp.body, err)
		}
		if len(im.Manifests) != 1 || im.Manifests[0].ArtifactType != atSBOM {
			t.Errorf("GET referrers?artifactType=%s listed %s, want only the sbom", atSBOM, resp.body)
		}
	})

	t.Run("no fallback tag", func(t *testing.T) {
		resp := c.do(t, http.MethodGet, "/v2/e2e/referrers/tags/list", nil, nil)
		fallback := strings.Replace(subjectDesc.Digest.String(), ":", "-", 1)
		if resp.status != http.StatusOK || strings.Contains(string(resp.body), fallback) {
			t.Errorf("GET tags/list = %d %s, want 200 without the fallback tag %s", resp.status, resp.body, fallback)
		}
	})

	t.Run("subject pushed later", func(t *testing.T) {
		later := buildImage(t, "arm64", 99, 1, 2048)
		laterDesc := descriptorOf(t, later)
		laterRef := repo.Digest(laterDesc.Digest.String())
		// The subject does not exist yet: its referrers list is empty.
		idx, err := remote.Referrers(laterRef, opts...)
		if err != nil {
			t.Fatalf("remote.Referrers(missing subject) = %v, want an empty list", err)
		}
		if got := referrerTypes(t, idx); len(got) != 0 {
			t.Errorf("remote.Referrers(missing subject) = %v, want empty", got)
		}
		art := artifactManifest(t, atSignature, emptyCfg, sig, laterDesc, nil)
		if err := remote.Put(repo.Digest(sha256Digest(art)), rawManifest{art, types.OCIManifestSchema1}, opts...); err != nil {
			t.Fatalf("push referrer of a missing subject: %v", err)
		}
		want := map[string]string{sha256Digest(art): atSignature}
		idx, err = remote.Referrers(laterRef, opts...)
		if err != nil {
			t.Fatalf("remote.Referrers(missing subject) = %v", err)
		}
		if got := referrerTypes(t, idx); !maps.Equal(got, want) {
			t.Errorf("referrers of a subject not yet pushed = %v, want %v", got, want)
		}
		if err := remote.Write(repo.Tag("later"), later, opts...); err != nil {
			t.Fatalf("push the subject: %v", err)
		}
		idx, err = remote.Referrers(laterRef, opts...)
		if err != nil {
			t.Fatalf("remote.Referrers(subject) = %v", err)
		}
		if got := referrerTypes(t, idx); !maps.Equal(got, want) {
			t.Errorf("referrers after the subject was pushed = %v, want %v", got, want)
		}
	})
}

// artifactManifest renders an OCI image manifest used as an artifact.
func artifactManifest(t testing.TB, artifactType string, cfg, layer v1.Layer, subject v1.Descriptor, ann map[string]string) []byte {
	t.Helper()
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     mtManifest,
		"config":        layerDescriptor(t, cfg),
		"layers":        []descriptor{layerDescriptor(t, layer)},
		"subject":       descriptor{MediaType: string(subject.MediaType), Digest: subject.Digest.String(), Size: subject.Size},
	}
	if artifactType != "" {
		m["artifactType"] = artifactType
	}
	if ann != nil {
		m["annotations"] = ann
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func layerDescriptor(t testing.TB, l v1.Layer) descriptor {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	size, err := l.Size()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := l.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	return descriptor{MediaType: string(mt), Digest: d.String(), Size: size}
}

func descriptorOf(t testing.TB, img v1.Image) v1.Descriptor {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	size, err := img.Size()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: size}
}

// referrerTypes maps each listed referrer's digest to its artifactType.
func referrerTypes(t testing.TB, idx v1.ImageIndex) map[string]string {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatalf("referrers index: %v", err)
	}
	out := map[string]string{}
	for _, d := range im.Manifests {
		out[d.Digest.String()] = d.ArtifactType
	}
	return out
}
