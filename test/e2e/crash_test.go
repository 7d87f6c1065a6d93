//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestCrashDuringPush: kill -9 of the registry in the middle of a 256 MiB
// blob push (a chunked PATCH stream, then a monolithic PUT ?digest=), a
// restart on the same storage, and then: the blob is not visible (HEAD 404),
// every file stored under a digest name hashes to that digest, and the push
// retried from scratch succeeds.
func TestCrashDuringPush(t *testing.T) {
	const (
		size     = 256 << 20
		seed     = 2024
		killAt   = 96 << 20 // bytes handed to the connection before kill -9
		repo     = "e2e/crash"
		blobPath = "/v2/" + repo + "/blobs/"
	)
	r := startTarget(t, regOptions{anonymousPull: true, users: map[string]string{"ci": "ci-e2e-password"}})
	c := newOCIClient(r)
	small := c.pushBlob(t, repo, seededBytes(1, 1<<20))
	big := seededDigest(seed, size)

	for _, mode := range []struct {
		name   string
		method string
		digest bool // PUT ?digest= with Content-Length, else PATCH without
	}{
		{"chunked PATCH", http.MethodPatch, false},
		{"monolithic PUT", http.MethodPut, true},
	} {
		t.Run("kill -9 during "+mode.name, func(t *testing.T) {
			loc := c.startUpload(t, repo)
			body := newSeededReader(seed, size)
			body.throttleEvery, body.throttleFor = 4<<20, 20*time.Millisecond
			target := loc
			if mode.digest {
				target = withQuery(loc, "digest", big)
			}
			req := c.newRequest(t, mode.method, target, body)
			req.Header.Set("Content-Type", "application/octet-stream")
			req.ContentLength = -1 // chunked transfer encoding
			if mode.digest {
				req.ContentLength = size
			}
			done := make(chan error, 1)
			go func() {
				resp, err := c.hc.Do(req)
				if err == nil {
					resp.Body.Close()
					err = fmt.Errorf("completed with status %d", resp.StatusCode)
				}
				done <- err
			}()
			deadline := time.Now().Add(2 * time.Minute)
			for body.read.Load() < killAt {
				select {
				case err := <-done:
					t.Fatalf("%s ended after %d bytes, before the kill: %v", mode.method, body.read.Load(), err)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: only %d bytes sent after 2 minutes", mode.method, body.read.Load())
				}
				time.Sleep(5 * time.Millisecond)
			}
			r.kill()
			select {
			case err := <-done:
				t.Logf("%s after kill -9 at %d MiB sent: %v", mode.method, body.read.Load()>>20, err)
			case <-time.After(30 * time.Second):
				t.Fatalf("%s still running 30s after kill -9", mode.method)
			}

			r.start()
			resp := c.do(t, http.MethodHead, blobPath+big, nil, nil)
			if resp.status != http.StatusNotFound {
				t.Errorf("HEAD %s after crash and restart = %d, want 404", big, resp.status)
			}
			resp = c.do(t, http.MethodGet, blobPath+big, nil, nil)
			checkOCIError(t, "GET of the crashed blob", resp, []int{http.StatusNotFound}, []string{"BLOB_UNKNOWN"})
			stored := r.storedBlobs(t)
			if _, ok := stored[small]; !ok {
				t.Errorf("storage has no file named by the blob pushed before the crash (%s): lost, or a layout storedBlobs does not know", small)
			}
			if p, ok := stored[big]; ok {
				t.Errorf("storage holds %s under the crashed blob's digest", p)
			}
			if resp := c.do(t, http.MethodHead, blobPath+small, nil, nil); resp.status != http.StatusOK {
				t.Errorf("HEAD of the blob pushed before the crash = %d, want 200", resp.status)
			}
		})
	}

	t.Run("retry", func(t *testing.T) {
		loc := c.startUpload(t, repo)
		req := c.newRequest(t, http.MethodPut, withQuery(loc, "digest", big), newSeededReader(seed, size))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.ContentLength = size
		resp := c.send(t, req)
		if resp.status != http.StatusCreated {
			t.Fatalf("retried PUT of %s = %d %s, want 201", big, resp.status, resp.body)
		}
		resp = c.do(t, http.MethodHead, blobPath+big, nil, nil)
		if resp.status != http.StatusOK || resp.header.Get("Content-Length") != strconv.Itoa(size) || resp.header.Get("Docker-Content-Digest") != big {
			t.Errorf("HEAD after retry = %d, Content-Length %q, Docker-Content-Digest %q; want 200, %d, %s",
				resp.status, resp.header.Get("Content-Length"), resp.header.Get("Docker-Content-Digest"), size, big)
		}
		if got := getDigest(t, c, blobPath+big); got != big {
			t.Errorf("GET after retry hashes to %s, want %s", got, big)
		}
		if _, ok := r.storedBlobs(t)[big]; !ok {
			t.Errorf("storage has no file named by %s after the retry", big)
		}
	})
}

// getDigest streams a GET and returns the sha256 digest of the body.
func getDigest(t testing.TB, c *ociClient, path string) string {
	t.Helper()
	resp, err := c.hc.Do(c.newRequest(t, http.MethodGet, path, nil))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200", path, resp.StatusCode)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
