//go:build e2e

package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/testkit/ociupstream"
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
	if n := len(ociupstream.MetadataBody()); n != 1581 {
		t.Fatalf("metadata body is %d bytes, want 1581", n)
	}
	// a metadata service that sends less than it promises and holds on,
	// so the bytes stream on before any digest check
	meta := ociupstream.NewMetadata(t)
	up := ociupstream.RedirectBlobs(t, meta.URL)

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
	if n := meta.Hits(); n != 0 {
		t.Errorf("metadata service saw %d requests, want 0", n)
	}
	if !r.airlockLogContains(t, "refusing to connect to "+strings.TrimPrefix(meta.URL, "http://")) {
		t.Errorf("airlock's log does not name the refused address %s", meta.URL)
	}
}
