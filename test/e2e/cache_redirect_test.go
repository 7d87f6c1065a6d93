//go:build e2e

package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// The outside review's reproduction with the built binary and curl: the
// configured upstream of mcr.microsoft.com (on loopback) answers a blob
// GET with a 307 to another loopback port, a fake cloud metadata service
// that sends 1,581 bytes. curl, an anonymous client of airlock's registry,
// must get an error status and none of those bytes; the metadata service
// must see no request; airlock's log must name the refused address.
func TestCacheRedirectToInternalAddressRefused(t *testing.T) {
	skipUnlessAirlock(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is not installed: %v", err)
	}
	secret := []byte(`{"Code":"Success","AccessKeyId":"ASIAFAKEFAKEFAKE","SecretAccessKey":"` + strings.Repeat("s", 1581-72) + `"}`)
	if len(secret) != 1581 {
		t.Fatalf("metadata body is %d bytes, want 1581", len(secret))
	}
	var metaHits atomic.Int32
	release := make(chan struct{})
	meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		metaHits.Add(1)
		w.Header().Set("Content-Length", "4096") // more than is sent: the bytes stream on before any digest check
		w.Write(secret)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer meta.Close()
	defer close(release)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			http.Redirect(w, r, meta.URL+"/latest/meta-data/iam/security-credentials/node", http.StatusTemporaryRedirect)
			return
		}
		http.NotFound(w, r)
	}))
	defer up.Close()

	r := startCacheAirlock(t, cacheOptions{upstream: up.URL})
	sum := sha256.Sum256([]byte("the layer a manifest names"))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	out := filepath.Join(t.TempDir(), "body")
	cmd := exec.Command(curl, "-sS", "-o", out, "-w", "%{http_code} %{size_download}",
		r.url("/v2/"+cacheTarget+"/app/blobs/"+digest))
	res, err := cmd.Output() // curl fails on an aborted transfer; what it received counts
	body, _ := os.ReadFile(out)
	shown := bytes.TrimSpace(body)
	if len(shown) > 200 {
		shown = append(shown[:200:200], "…"...)
	}
	t.Logf("curl: status and bytes %s (err %v); body: %s", res, err, shown)
	var code, size int
	if _, serr := fmt.Sscan(string(res), &code, &size); serr != nil {
		t.Fatalf("curl -w output %q: %v", res, serr)
	}
	if code < 400 || bytes.Contains(body, []byte("SecretAccessKey")) || bytes.Contains(body, []byte("sssss")) {
		t.Errorf("curl got status %d and %d bytes, metadata bytes among them %v; want an error status and none",
			code, size, bytes.Contains(body, []byte("sssss")))
	}
	if n := metaHits.Load(); n != 0 {
		t.Errorf("metadata service saw %d requests, want 0", n)
	}
	if !r.airlockLogContains(t, "refusing to connect to "+strings.TrimPrefix(meta.URL, "http://")) {
		t.Errorf("airlock's log does not name the refused address %s", meta.URL)
	}
}
