//go:build e2e

package e2e

import (
	"bytes"
	"net/http"
	"path/filepath"
	"testing"
)

// TestSkopeoMultiArchRoundTrip: skopeo copies a multi-arch OCI image index
// from an OCI layout into the registry and back out into another layout;
// index, manifests, configs and layers come back byte for byte, and the
// registry serves the index bytes under their digest.
func TestSkopeoMultiArchRoundTrip(t *testing.T) {
	users := map[string]string{"ci": "ci-e2e-password"}
	r := startTarget(t, regOptions{anonymousPull: true, users: users})
	src := filepath.Join(t.TempDir(), "src")
	dst := filepath.Join(t.TempDir(), "dst")
	buildMultiArchLayout(t, src, "multi", 42, 3, 1<<20)
	want := layoutRef(t, src, "multi")
	creds := r.user + ":" + r.password
	ref := "docker://" + r.addr + "/e2e/multi:v1"

	mustSkopeo(t, "copy", "--all", "--dest-tls-verify=false", "--dest-creds", creds, "oci:"+src+":multi", ref)
	mustSkopeo(t, "copy", "--all", "--src-tls-verify=false", "--src-creds", creds, ref, "oci:"+dst+":multi")

	got := layoutRef(t, dst, "multi")
	if got.Digest != want.Digest || got.MediaType != want.MediaType || got.Size != want.Size {
		t.Errorf("round-tripped index = %s %s %d, want %s %s %d", got.MediaType, got.Digest, got.Size, want.MediaType, want.Digest, want.Size)
	}
	srcBlobs, dstBlobs := layoutBlobs(t, src), layoutBlobs(t, dst)
	// 1 index + 2 × (manifest + config + 3 layers).
	if len(srcBlobs) != 11 {
		t.Fatalf("source layout has %d blobs, want 11", len(srcBlobs))
	}
	for d, b := range srcBlobs {
		gb, ok := dstBlobs[d]
		switch {
		case !ok:
			t.Errorf("blob %s missing after the round trip", d)
		case !bytes.Equal(gb, b):
			t.Errorf("blob %s: %d bytes differ after the round trip (want %d bytes)", d, len(gb), len(b))
		}
	}
	for d := range dstBlobs {
		if _, ok := srcBlobs[d]; !ok {
			t.Errorf("round trip produced blob %s that the source does not have", d)
		}
	}

	// The registry itself serves the index bytes by tag and by digest.
	c := newOCIClient(r)
	for _, reference := range []string{"v1", want.Digest.String()} {
		resp := c.do(t, http.MethodGet, "/v2/e2e/multi/manifests/"+reference,
			http.Header{"Accept": {mtIndex, mtManifest}}, nil)
		if resp.status != http.StatusOK {
			t.Errorf("GET manifests/%s = %d %s, want 200", reference, resp.status, resp.body)
			continue
		}
		if !bytes.Equal(resp.body, srcBlobs[want.Digest.String()]) {
			t.Errorf("GET manifests/%s: body differs from the pushed index", reference)
		}
		if got := resp.header.Get("Docker-Content-Digest"); got != want.Digest.String() {
			t.Errorf("GET manifests/%s: Docker-Content-Digest = %q, want %s", reference, got, want.Digest)
		}
		if got := resp.header.Get("Content-Type"); got != mtIndex {
			t.Errorf("GET manifests/%s: Content-Type = %q, want %s", reference, got, mtIndex)
		}
	}
	resp := c.do(t, http.MethodGet, "/v2/e2e/multi/tags/list", nil, nil)
	if resp.status != http.StatusOK || !bytes.Contains(resp.body, []byte(`"v1"`)) {
		t.Errorf("GET tags/list = %d %s, want 200 listing v1", resp.status, resp.body)
	}
	// Every pushed blob is on disk under its digest, with content that
	// hashes to it (the layout storedBlobs knows; see storage_test.go).
	stored := r.storedBlobs(t)
	for d := range srcBlobs {
		if _, ok := stored[d]; !ok {
			t.Errorf("storage %s has no file named by %s (storedBlobs does not know this layout?)", r.storage, d)
		}
	}
}
