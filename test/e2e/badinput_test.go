//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadInput sends malformed, oversize, mismatched, traversing, truncated
// and unauthenticated requests. Each must get a 4xx (never 5xx) with the OCI
// error code the spec names, and none may leave anything stored: afterwards
// every file under a digest name in the storage is one the test pushed on
// purpose, with the right content, and nothing appeared outside the
// storage directory.
func TestBadInput(t *testing.T) {
	users := map[string]string{"ci": "ci-e2e-password"}
	r := startTarget(t, regOptions{anonymousPull: true, users: users})
	c := newOCIClient(r)
	const repo = "e2e/bad"
	mpath := "/v2/" + repo + "/manifests/"
	bpath := "/v2/" + repo + "/blobs/"

	// What the test stores on purpose; everything else must stay absent.
	legit := map[string]bool{}
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := seededBytes(11, 64<<10)
	cd, ld := c.pushBlob(t, repo, cfg), c.pushBlob(t, repo, layer)
	legit[cd], legit[ld] = true, true
	cfgDesc := descriptor{MediaType: mtConfig, Digest: cd, Size: int64(len(cfg))}
	layerDesc := descriptor{MediaType: mtLayer, Digest: ld, Size: int64(len(layer))}
	manifest := func(ann map[string]string) []byte {
		return manifestJSON(t, cfgDesc, []descriptor{layerDesc}, ann)
	}
	legit[c.pushManifest(t, repo, "good", mtManifest, manifest(nil))] = true
	missing := sha256Digest([]byte("never pushed"))
	ctManifest := http.Header{"Content-Type": {mtManifest}}
	octet := http.Header{"Content-Type": {"application/octet-stream"}}

	type check struct {
		name     string
		send     func(t *testing.T) *response
		statuses []int
		codes    []string         // empty: status only (HEAD, or codes the spec leaves open)
		after    func(*testing.T) // state checks: nothing stored
		// silentOK: the server may also just close the connection.
		silentOK bool
	}
	manifestAbsent := func(ref string) func(*testing.T) {
		return func(t *testing.T) {
			resp := c.do(t, http.MethodGet, mpath+ref, http.Header{"Accept": {mtManifest}}, nil)
			checkOCIError(t, "GET manifests/"+ref+" afterwards", resp, []int{404}, []string{"MANIFEST_UNKNOWN"})
		}
	}
	blobAbsent := func(digests ...string) func(*testing.T) {
		return func(t *testing.T) {
			for _, d := range digests {
				if resp := c.do(t, http.MethodHead, bpath+d, nil, nil); resp.status != http.StatusNotFound {
					t.Errorf("HEAD blobs/%s afterwards = %d, want 404", d, resp.status)
				}
			}
		}
	}
	put := func(path string, hdr http.Header, body []byte) func(*testing.T) *response {
		return func(t *testing.T) *response { return c.do(t, http.MethodPut, path, hdr, body) }
	}
	get := func(path string) func(*testing.T) *response {
		return func(t *testing.T) *response { return c.do(t, http.MethodGet, path, nil, nil) }
	}
	blobBody := seededBytes(12, 10000)
	blobDigest := sha256Digest(blobBody)
	longName := strings.TrimSuffix(strings.Repeat("abcdefghij/", 30), "/") // 329 characters
	hugeName := strings.TrimSuffix(strings.Repeat("abcdefghij/", 400), "/")
	oversize := manifest(map[string]string{"pad": strings.Repeat("a", 4<<20)})
	wrongDigestManifest := manifest(map[string]string{"n": "wrong-digest"})

	nearLimit := manifest(map[string]string{"pad": strings.Repeat("a", 4<<20-1024)})

	checks := []check{
		// Manifests. One just under 4 MiB must be accepted: the issue's
		// (and distribution's) limit is 4 MiB.
		{name: "manifest just under 4 MiB is accepted", send: func(t *testing.T) *response {
			resp := c.do(t, http.MethodPut, mpath+"near-limit", ctManifest, nearLimit)
			if resp.status == http.StatusCreated {
				legit[sha256Digest(nearLimit)] = true
			}
			return resp
		}, statuses: []int{201}},
		{name: "manifest malformed JSON", send: put(mpath+"malformed", ctManifest, []byte(`{"schemaVersion": 2, "config": {`)),
			statuses: []int{400}, codes: []string{"MANIFEST_INVALID"}, after: manifestAbsent("malformed")},
		{name: "manifest JSON array", send: put(mpath+"array", ctManifest, []byte(`[]`)),
			statuses: []int{400}, codes: []string{"MANIFEST_INVALID"}, after: manifestAbsent("array")},
		{name: "manifest over 4 MiB", send: put(mpath+"oversize", ctManifest, oversize),
			statuses: []int{400, 413}, codes: []string{"MANIFEST_INVALID", "SIZE_INVALID"}, after: manifestAbsent("oversize")},
		{name: "manifest references a missing layer",
			send:     put(mpath+"missing-layer", ctManifest, manifestJSON(t, cfgDesc, []descriptor{{MediaType: mtLayer, Digest: missing, Size: 12}}, nil)),
			statuses: []int{400}, codes: []string{"MANIFEST_BLOB_UNKNOWN"}, after: manifestAbsent("missing-layer")},
		{name: "manifest references a missing config",
			send:     put(mpath+"missing-config", ctManifest, manifestJSON(t, descriptor{MediaType: mtConfig, Digest: missing, Size: 12}, []descriptor{layerDesc}, nil)),
			statuses: []int{400}, codes: []string{"MANIFEST_BLOB_UNKNOWN"}, after: manifestAbsent("missing-config")},
		{name: "manifest PUT by a digest it does not have",
			send:     put(mpath+sha256Digest([]byte("other")), ctManifest, wrongDigestManifest),
			statuses: []int{400}, codes: []string{"DIGEST_INVALID"},
			after: func(t *testing.T) {
				manifestAbsent(sha256Digest(wrongDigestManifest))(t)
				manifestAbsent(sha256Digest([]byte("other")))(t)
			}},
		{name: "manifest PUT by a malformed digest", send: put(mpath+"sha256:xyz", ctManifest, manifest(nil)),
			statuses: []int{400}, codes: []string{"DIGEST_INVALID", "MANIFEST_INVALID"}},
		{name: "manifest tag longer than 128", send: put(mpath+strings.Repeat("t", 129), ctManifest, manifest(nil)),
			statuses: []int{400, 404}, codes: []string{"MANIFEST_INVALID", "NAME_INVALID", "TAG_INVALID", "MANIFEST_UNKNOWN"}},
		{name: "manifest tag with bad characters", send: put(mpath+"-bad", ctManifest, manifest(nil)),
			statuses: []int{400, 404}, codes: []string{"MANIFEST_INVALID", "NAME_INVALID", "TAG_INVALID", "MANIFEST_UNKNOWN"}},

		// Blobs.
		{name: "blob PUT with the wrong digest",
			send: func(t *testing.T) *response {
				loc := c.startUpload(t, repo)
				return c.do(t, http.MethodPut, withQuery(loc, "digest", missing), octet, blobBody)
			},
			statuses: []int{400}, codes: []string{"DIGEST_INVALID"}, after: blobAbsent(missing, blobDigest)},
		{name: "blob monolithic POST with the wrong digest",
			send: func(t *testing.T) *response {
				return c.do(t, http.MethodPost, bpath+"uploads/?digest="+missing, octet, blobBody)
			},
			statuses: []int{400, 202}, codes: []string{"DIGEST_INVALID"}, after: blobAbsent(missing, blobDigest)},
		{name: "blob PUT with a malformed digest",
			send: func(t *testing.T) *response {
				loc := c.startUpload(t, repo)
				return c.do(t, http.MethodPut, withQuery(loc, "digest", "sha256:xyz"), octet, blobBody)
			},
			statuses: []int{400}, codes: []string{"DIGEST_INVALID"}, after: blobAbsent(blobDigest)},
		{name: "blob PUT with an unsupported algorithm",
			send: func(t *testing.T) *response {
				loc := c.startUpload(t, repo)
				return c.do(t, http.MethodPut, withQuery(loc, "digest", "md5:"+strings.Repeat("0", 32)), octet, blobBody)
			},
			statuses: []int{400}, codes: []string{"DIGEST_INVALID", "UNSUPPORTED"}, after: blobAbsent(blobDigest)},
		{name: "blob GET with a traversing digest", send: get(bpath + "sha256:../../etc/passwd"),
			statuses: []int{400, 404}, codes: []string{"DIGEST_INVALID", "BLOB_UNKNOWN", "NAME_UNKNOWN", "NAME_INVALID"}},
		{name: "blob GET with a malformed digest", send: get(bpath + "sha256:xyz"),
			statuses: []int{400, 404}, codes: []string{"DIGEST_INVALID", "BLOB_UNKNOWN"}},
		{name: "upload PATCH to an unknown session", send: func(t *testing.T) *response {
			return c.do(t, http.MethodPatch, bpath+"uploads/not-a-session", octet, []byte("x"))
		}, statuses: []int{404, 400}, codes: []string{"BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"}},

		// Names.
		{name: "traversal /v2/../x/manifests/a", send: get("/v2/../x/manifests/a"),
			statuses: []int{400, 404}, codes: []string{"NAME_INVALID", "NAME_UNKNOWN"}},
		{name: "traversal /v2/a/..%2f..%2fetc/tags/list", send: get("/v2/a/..%2f..%2fetc/tags/list"),
			statuses: []int{400, 404}, codes: []string{"NAME_INVALID", "NAME_UNKNOWN"}},
		{name: "traversal in a manifest PUT", send: put("/v2/e2e/..%2f..%2f..%2fescape/manifests/v1", ctManifest, manifest(nil)),
			statuses: []int{400, 404}, codes: []string{"NAME_INVALID", "NAME_UNKNOWN"}},
		{name: "traversal in an upload POST", send: func(t *testing.T) *response {
			return c.do(t, http.MethodPost, "/v2/e2e/%2e%2e/%2e%2e/escape/blobs/uploads/", nil, nil)
		}, statuses: []int{400, 404}, codes: []string{"NAME_INVALID", "NAME_UNKNOWN"}},
		{name: "uppercase name", send: get("/v2/E2E/Bad/tags/list"),
			statuses: []int{400, 404}, codes: []string{"NAME_INVALID", "NAME_UNKNOWN"}},
		{name: "name of 329 characters", send: func(t *testing.T) *response {
			return c.do(t, http.MethodPost, "/v2/"+longName+"/blobs/uploads/", nil, nil)
		}, statuses: []int{400}, codes: []string{"NAME_INVALID"}},
		{name: "name of 4399 characters", send: put("/v2/"+hugeName+"/manifests/v1", ctManifest, manifest(nil)),
			statuses: []int{400, 414}, codes: nil},

		// Chunked uploads and Content-Range.
		{name: "first chunk not at offset 0", send: func(t *testing.T) *response {
			loc := c.startUpload(t, repo)
			return c.do(t, http.MethodPatch, loc, http.Header{"Content-Type": {"application/octet-stream"}, "Content-Range": {"10-19"}}, blobBody[:10])
		}, statuses: []int{416}},
		{name: "chunk repeated", send: func(t *testing.T) *response {
			loc := c.startUpload(t, repo)
			resp := c.do(t, http.MethodPatch, loc, http.Header{"Content-Type": {"application/octet-stream"}, "Content-Range": {"0-9"}}, blobBody[:10])
			if resp.status != http.StatusAccepted {
				t.Fatalf("first PATCH 0-9 = %d %s, want 202", resp.status, resp.body)
			}
			return c.do(t, http.MethodPatch, c.location(t, resp), http.Header{"Content-Type": {"application/octet-stream"}, "Content-Range": {"0-9"}}, blobBody[:10])
		}, statuses: []int{416}},
		{name: "Content-Range malformed", send: func(t *testing.T) *response {
			loc := c.startUpload(t, repo)
			return c.do(t, http.MethodPatch, loc, http.Header{"Content-Type": {"application/octet-stream"}, "Content-Range": {"bytes=zero-nine"}}, blobBody[:10])
		}, statuses: []int{400, 416}},
		{name: "Content-Range longer than the body", send: func(t *testing.T) *response {
			loc := c.startUpload(t, repo)
			return c.do(t, http.MethodPatch, loc, http.Header{"Content-Type": {"application/octet-stream"}, "Content-Range": {"0-99"}}, blobBody[:10])
		}, statuses: []int{400, 416}},
		{name: "truncated monolithic PUT", send: func(t *testing.T) *response {
			loc := c.startUpload(t, repo)
			return truncatedRequest(t, c, http.MethodPut, withQuery(loc, "digest", blobDigest), int64(len(blobBody)), blobBody[:4000])
		}, statuses: nil, silentOK: true, after: blobAbsent(blobDigest)},
		{name: "truncated PATCH, then PUT claims the digest", send: func(t *testing.T) *response {
			loc := c.startUpload(t, repo)
			truncatedRequest(t, c, http.MethodPatch, loc, int64(len(blobBody)), blobBody[:4000])
			// Whatever the server kept of the cut chunk, closing the upload
			// with the full blob's digest must not store a blob.
			return c.do(t, http.MethodPut, withQuery(loc, "digest", blobDigest), octet, nil)
		}, statuses: []int{400, 404, 416}, after: blobAbsent(blobDigest)},

		// Credentials.
		{name: "push with a wrong password", send: func(t *testing.T) *response {
			return c.as("ci", "wrong").do(t, http.MethodPut, mpath+"badcreds", ctManifest, manifest(nil))
		}, statuses: []int{401}, codes: []string{"UNAUTHORIZED"}, after: manifestAbsent("badcreds")},
		{name: "push as an unknown user", send: func(t *testing.T) *response {
			return c.as("nobody", "ci-e2e-password").do(t, http.MethodPost, bpath+"uploads/", nil, nil)
		}, statuses: []int{401}, codes: []string{"UNAUTHORIZED"}},
		{name: "push without credentials", send: func(t *testing.T) *response {
			return c.anonymous().do(t, http.MethodPut, mpath+"anon", ctManifest, manifest(nil))
		}, statuses: []int{401}, codes: []string{"UNAUTHORIZED"}, after: manifestAbsent("anon")},
		{name: "delete without credentials", send: func(t *testing.T) *response {
			return c.anonymous().do(t, http.MethodDelete, mpath+sha256Digest(manifest(nil)), nil, nil)
		}, statuses: []int{401}, codes: []string{"UNAUTHORIZED"}},
		{name: "pull with a wrong password", send: func(t *testing.T) *response {
			return c.as("ci", "wrong").do(t, http.MethodGet, mpath+"good", nil, nil)
		}, statuses: []int{401}, codes: []string{"UNAUTHORIZED"}},
		{name: "malformed Authorization header", send: func(t *testing.T) *response {
			return c.anonymous().do(t, http.MethodPost, bpath+"uploads/", http.Header{"Authorization": {"Basic !!!not-base64"}}, nil)
		}, statuses: []int{400, 401}, codes: []string{"UNAUTHORIZED"}},
		{name: "Basic credentials without a colon", send: func(t *testing.T) *response {
			return c.anonymous().do(t, http.MethodPost, bpath+"uploads/",
				http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("ci"))}}, nil)
		}, statuses: []int{400, 401}, codes: []string{"UNAUTHORIZED"}},
	}

	for _, ck := range checks {
		t.Run(ck.name, func(t *testing.T) {
			resp := ck.send(t)
			t.Logf("→ %d %.200s", resp.status, resp.body)
			if resp.status >= 500 {
				t.Errorf("status %d (body %.300q): a server error on bad input", resp.status, resp.body)
			}
			if resp.status != 0 {
				checkOCIError(t, ck.name, resp, ck.statuses, ck.codes)
				if resp.status == http.StatusUnauthorized && !strings.HasPrefix(resp.header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("401 with WWW-Authenticate %q, want a Basic challenge", resp.header.Get("WWW-Authenticate"))
				}
			} else if !ck.silentOK {
				t.Errorf("no response, want one of %v", ck.statuses)
			}
			if ck.after != nil {
				ck.after(t)
			}
		})
	}

	t.Run("nothing stored", func(t *testing.T) {
		// The valid content is still served.
		if resp := c.do(t, http.MethodGet, mpath+"good", http.Header{"Accept": {mtManifest}}, nil); resp.status != http.StatusOK {
			t.Errorf("GET manifests/good = %d, want 200", resp.status)
		}
		for d, p := range r.storedBlobs(t) {
			if !legit[d] {
				t.Errorf("storage holds %s (%s): content no valid request stored", p, d)
			}
		}
		if r.storageURL != "" {
			return // no storage directory whose neighbours could show a traversal
		}
		entries, err := os.ReadDir(filepath.Dir(r.storage))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			n := e.Name()
			if n != filepath.Base(r.storage) && !strings.HasSuffix(n, ".log") && !strings.HasSuffix(n, ".yaml") && !strings.HasSuffix(n, ".yml") && n != "htpasswd" {
				t.Errorf("unexpected %s next to the storage directory: a traversal escaped?", filepath.Join(filepath.Dir(r.storage), n))
			}
		}
	})
}

// truncatedRequest sends a request over a raw connection that announces
// Content-Length length but sends only part, then closes its write side. It
// returns the response if the server answers within 5 s (status 0 when it
// just closes), so the caller sees how the server treats a cut body.
func truncatedRequest(t testing.TB, c *ociClient, method, target string, length int64, part []byte) *response {
	t.Helper()
	req := c.newRequest(t, method, target, nil)
	conn, err := net.DialTimeout("tcp", c.r.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if c.r.scheme == "https" {
		t.Fatal("truncatedRequest: plain HTTP only")
	}
	var head bytes.Buffer
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n", method, req.URL.RequestURI(), c.r.addr, length)
	if a := req.Header.Get("Authorization"); a != "" {
		fmt.Fprintf(&head, "Authorization: %s\r\n", a)
	}
	head.WriteString("Connection: close\r\n\r\n")
	if _, err := conn.Write(append(head.Bytes(), part...)); err != nil {
		t.Fatalf("write truncated request: %v", err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return &response{status: 0}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}
