//go:build e2e

package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTLS: airlock serves HTTPS from registry.tls certFile/keyFile; skopeo
// verifies it against the test CA given with --dest-cert-dir/--src-cert-dir
// (no --tls-verify=false anywhere), and refuses it without the CA.
func TestTLS(t *testing.T) {
	if os.Getenv("E2E_TARGET") == kindDockerRegistry {
		t.Skip("airlock only: the harness runs docker-registry without TLS")
	}
	ca := newTestCA(t)
	r := startAirlock(t, regOptions{anonymousPull: false, users: map[string]string{"ci": "ci-e2e-password"}, tls: ca})
	creds := r.user + ":" + r.password
	src := filepath.Join(t.TempDir(), "src")
	dst := filepath.Join(t.TempDir(), "dst")
	buildMultiArchLayout(t, src, "tls", 77, 1, 256<<10)
	want := layoutRef(t, src, "tls")
	ref := "docker://" + r.addr + "/e2e/tls:v1"

	mustSkopeo(t, "copy", "--all", "--dest-cert-dir", ca.caDir, "--dest-creds", creds, "oci:"+src+":tls", ref)
	mustSkopeo(t, "copy", "--all", "--src-cert-dir", ca.caDir, "--src-creds", creds, ref, "oci:"+dst+":tls")
	if got := layoutRef(t, dst, "tls"); got.Digest != want.Digest {
		t.Errorf("index over TLS round trip = %s, want %s", got.Digest, want.Digest)
	}

	// Without the CA, verification fails: the certificate is really checked.
	out, err := skopeo(t, "inspect", "--raw", "--creds", creds, ref)
	if err == nil {
		t.Errorf("skopeo inspect without the test CA succeeded, want a certificate error")
	} else if !strings.Contains(out, "certificate") {
		t.Errorf("skopeo inspect without the test CA: %s, want a certificate error", out)
	}

	// A Go client with the CA pulls; anonymous pulls are refused.
	c := newOCIClient(r)
	resp := c.do(t, http.MethodGet, "/v2/e2e/tls/manifests/v1", http.Header{"Accept": {mtIndex}}, nil)
	if resp.status != http.StatusOK || sha256Digest(resp.body) != want.Digest.String() {
		t.Errorf("GET manifests/v1 over TLS = %d (digest %s), want 200 with %s", resp.status, sha256Digest(resp.body), want.Digest)
	}
	if resp := c.anonymous().do(t, http.MethodGet, "/v2/e2e/tls/manifests/v1", nil, nil); resp.status != http.StatusUnauthorized {
		t.Errorf("anonymous GET with anonymousPull false = %d, want 401", resp.status)
	}
	// Plain HTTP on the TLS listener gets no registry answer.
	hc := &http.Client{Transport: &http.Transport{Proxy: nil}}
	if resp, err := hc.Get("http://" + r.addr + "/v2/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("plain HTTP GET /v2/ on the TLS listener = %d, want refused", resp.StatusCode)
		}
	}
}
