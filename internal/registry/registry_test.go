package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
)

const testUser, testPass = "ci", "s3cret"

type harness struct {
	t    *testing.T
	srv  *httptest.Server
	dir  string
	user string
	pass string
}

func newHarness(t *testing.T, anonymousPull bool) *harness {
	t.Helper()
	dir := t.TempDir()
	bs, err := blobstore.Open(dir, blobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte(testPass), bcrypt.MinCost)
	cfg := &Config{Listen: "127.0.0.1:0", Storage: StorageConfig{Path: dir}, AnonymousPull: &anonymousPull,
		Users: []User{{Name: testUser, PasswordHash: string(hash)}}}
	s, err := New(cfg, Deps{Store: NewLocalStore(bs)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &harness{t: t, srv: ts, dir: dir, user: testUser, pass: testPass}
}

// do sends a request with the test user's credentials unless anon.
func (h *harness) do(method, path string, body []byte, hdr map[string]string, anon bool) (*http.Response, []byte) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if !anon {
		req.SetBasicAuth(h.user, h.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

func (h *harness) pushBlob(repo string, content []byte) oci.Digest {
	h.t.Helper()
	d := oci.SHA256.FromBytes(content)
	resp, body := h.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+string(d), content, nil, false)
	if resp.StatusCode != 201 {
		h.t.Fatalf("monolithic push = %d %s", resp.StatusCode, body)
	}
	return d
}

func (h *harness) pushImage(repo, tag string, layer []byte) (oci.Digest, []byte) {
	h.t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	cd := h.pushBlob(repo, cfg)
	ld := h.pushBlob(repo, layer)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		oci.MediaTypeImageManifest, cd, len(cfg), ld, len(layer))
	resp, body := h.do("PUT", "/v2/"+repo+"/manifests/"+tag, []byte(m), map[string]string{"Content-Type": oci.MediaTypeImageManifest}, false)
	if resp.StatusCode != 201 {
		h.t.Fatalf("PUT manifest = %d %s", resp.StatusCode, body)
	}
	return oci.Digest(resp.Header.Get("Docker-Content-Digest")), []byte(m)
}

func errCode(t *testing.T, body []byte) string {
	t.Helper()
	var doc struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || len(doc.Errors) == 0 {
		t.Fatalf("body %q is not an OCI error document", body)
	}
	return doc.Errors[0].Code
}

func TestPushPullRoundTrip(t *testing.T) {
	h := newHarness(t, true)
	d, m := h.pushImage("team/app", "v1", []byte("layer bytes"))
	if d != oci.SHA256.FromBytes(m) {
		t.Fatalf("Docker-Content-Digest = %s, want %s", d, oci.SHA256.FromBytes(m))
	}
	for _, ref := range []string{"v1", string(d)} {
		resp, body := h.do("GET", "/v2/team/app/manifests/"+ref, nil, nil, true)
		if resp.StatusCode != 200 || !bytes.Equal(body, m) || resp.Header.Get("Content-Type") != oci.MediaTypeImageManifest {
			t.Errorf("GET manifest %s = %d %q type %q", ref, resp.StatusCode, body, resp.Header.Get("Content-Type"))
		}
		resp, _ = h.do("HEAD", "/v2/team/app/manifests/"+ref, nil, nil, true)
		if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != string(d) || resp.ContentLength != int64(len(m)) {
			t.Errorf("HEAD manifest %s = %d digest %q len %d", ref, resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), resp.ContentLength)
		}
	}
	ld := oci.SHA256.FromBytes([]byte("layer bytes"))
	resp, body := h.do("GET", "/v2/team/app/blobs/"+string(ld), nil, map[string]string{"Range": "bytes=6-10"}, true)
	if resp.StatusCode != 206 || string(body) != "bytes" {
		t.Errorf("GET blob Range = %d %q, want 206 \"bytes\"", resp.StatusCode, body)
	}
	resp, body = h.do("GET", "/v2/team/app/tags/list", nil, nil, true)
	if resp.StatusCode != 200 || string(body) != `{"name":"team/app","tags":["v1"]}` {
		t.Errorf("tags/list = %d %s", resp.StatusCode, body)
	}
}

func TestSHA512(t *testing.T) {
	h := newHarness(t, true)
	content := []byte("sha512 content")
	d := oci.SHA512.FromBytes(content)
	resp, body := h.do("POST", "/v2/r/blobs/uploads/?digest="+string(d), content, nil, false)
	if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != string(d) {
		t.Fatalf("sha512 push = %d %s digest %q", resp.StatusCode, body, resp.Header.Get("Docker-Content-Digest"))
	}
	resp, body = h.do("GET", "/v2/r/blobs/"+string(d), nil, nil, true)
	if resp.StatusCode != 200 || !bytes.Equal(body, content) || resp.Header.Get("Docker-Content-Digest") != string(d) {
		t.Errorf("sha512 GET = %d %q", resp.StatusCode, body)
	}
	cfg := []byte("{}")
	cd := h.pushBlob("r", cfg)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		oci.MediaTypeImageManifest, cd, d, len(content))
	md := oci.SHA512.FromBytes([]byte(m))
	resp, body = h.do("PUT", "/v2/r/manifests/"+string(md), []byte(m), map[string]string{"Content-Type": oci.MediaTypeImageManifest}, false)
	if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != string(md) {
		t.Fatalf("PUT sha512 manifest = %d %s digest %q", resp.StatusCode, body, resp.Header.Get("Docker-Content-Digest"))
	}
	resp, _ = h.do("GET", "/v2/r/manifests/"+string(md), nil, nil, true)
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != string(md) {
		t.Errorf("GET sha512 manifest = %d digest %q", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
	}
}

func TestChunkedUpload(t *testing.T) {
	h := newHarness(t, true)
	content := []byte("0123456789abcdef")
	d := oci.SHA256.FromBytes(content)
	resp, _ := h.do("POST", "/v2/r/blobs/uploads/", nil, nil, false)
	if resp.StatusCode != 202 {
		t.Fatalf("POST upload = %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	patch := func(start, end int, want int) {
		t.Helper()
		r, body := h.do("PATCH", loc, content[start:end+1], map[string]string{"Content-Range": fmt.Sprintf("%d-%d", start, end), "Content-Type": "application/octet-stream"}, false)
		if r.StatusCode != want {
			t.Fatalf("PATCH %d-%d = %d %s, want %d", start, end, r.StatusCode, body, want)
		}
	}
	patch(0, 7, 202)
	patch(12, 15, 416) // out of order
	patch(0, 7, 416)   // repeated chunk
	resp, _ = h.do("GET", loc, nil, nil, false)
	if resp.StatusCode != 204 || resp.Header.Get("Range") != "0-7" {
		t.Errorf("GET upload = %d Range %q, want 204 0-7", resp.StatusCode, resp.Header.Get("Range"))
	}
	patch(8, 15, 202)
	resp, body := h.do("PUT", loc+"?digest="+oci.SHA256.FromBytes([]byte("wrong")).String(), nil, nil, false)
	if resp.StatusCode != 400 || errCode(t, body) != "DIGEST_INVALID" {
		t.Errorf("PUT wrong digest = %d %s, want 400 DIGEST_INVALID", resp.StatusCode, body)
	}
	if resp, _ := h.do("HEAD", "/v2/r/blobs/"+string(d), nil, nil, true); resp.StatusCode != 404 {
		t.Errorf("HEAD after failed commit = %d, want 404", resp.StatusCode)
	}
}

func TestBadInput(t *testing.T) {
	h := newHarness(t, true)
	h.pushImage("r", "v1", []byte("x"))
	missing := oci.SHA256.FromBytes([]byte("missing"))
	big := []byte(`{"schemaVersion":2,"x":"` + strings.Repeat("a", oci.MaxManifestSize) + `"}`)
	badRef := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"a/b","digest":%q,"size":1},"layers":[]}`, oci.MediaTypeImageManifest, missing)
	mt := map[string]string{"Content-Type": oci.MediaTypeImageManifest}
	tests := []struct {
		name, method, path string
		body               []byte
		hdr                map[string]string
		anon               bool
		wantStatus         int
		wantCode           string
	}{
		{"malformed manifest", "PUT", "/v2/r/manifests/bad", []byte(`{"schemaVersion":`), mt, false, 400, "MANIFEST_INVALID"},
		{"oversize manifest", "PUT", "/v2/r/manifests/big", big, mt, false, 413, "SIZE_INVALID"},
		{"missing blob", "PUT", "/v2/r/manifests/m", []byte(badRef), mt, false, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"digest mismatch", "PUT", "/v2/r/manifests/" + string(missing), []byte(badRef), mt, false, 400, "DIGEST_INVALID"},
		{"bad tag", "GET", "/v2/r/manifests/-bad", nil, nil, true, 404, "MANIFEST_UNKNOWN"},
		{"bad digest", "GET", "/v2/r/blobs/sha256:zz", nil, nil, true, 400, "DIGEST_INVALID"},
		{"unknown repo tags", "GET", "/v2/nope/tags/list", nil, nil, true, 404, "NAME_UNKNOWN"},
		{"unknown manifest", "GET", "/v2/r/manifests/v2", nil, nil, true, 404, "MANIFEST_UNKNOWN"},
		{"unknown blob", "GET", "/v2/r/blobs/" + string(missing), nil, nil, true, 404, "BLOB_UNKNOWN"},
		{"traversal", "GET", "/v2/a/../../etc/tags/list", nil, nil, true, 400, "NAME_INVALID"},
		{"encoded traversal", "GET", "/v2/a/..%2f..%2fetc/tags/list", nil, nil, true, 400, "NAME_INVALID"},
		{"uppercase name", "GET", "/v2/Repo/tags/list", nil, nil, true, 400, "NAME_INVALID"},
		{"long name", "GET", "/v2/" + strings.Repeat("a", 300) + "/tags/list", nil, nil, true, 400, "NAME_INVALID"},
		{"unknown upload", "GET", "/v2/r/blobs/uploads/deadbeef", nil, nil, false, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"hostile upload id", "PATCH", "/v2/r/blobs/uploads/..", []byte("x"), nil, false, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"anonymous push", "POST", "/v2/r/blobs/uploads/", nil, nil, true, 401, "UNAUTHORIZED"},
		{"method", "POST", "/v2/r/tags/list", nil, nil, false, 405, "UNSUPPORTED"},
		{"bad n", "GET", "/v2/r/tags/list?n=-1", nil, nil, true, 400, "UNSUPPORTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.do(tt.method, tt.path, tt.body, tt.hdr, tt.anon)
			if resp.StatusCode != tt.wantStatus || errCode(t, body) != tt.wantCode {
				t.Errorf("%s %s = %d %s, want %d %s", tt.method, tt.path, resp.StatusCode, body, tt.wantStatus, tt.wantCode)
			}
		})
	}
	// Nothing partial is stored: every blob file hashes to its name.
	assertStoreClean(t, h.dir)
}

func assertStoreClean(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(filepath.Join(dir, "blobs"), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		alg := filepath.Base(filepath.Dir(filepath.Dir(p)))
		want := oci.Digest(alg + ":" + info.Name())
		if oci.Algorithm(alg).Available() && oci.Algorithm(alg).FromBytes(b) != want {
			t.Errorf("blob file %s does not hash to its name", p)
		}
		return nil
	})
}

func TestAuth(t *testing.T) {
	h := newHarness(t, false)
	resp, body := h.do("GET", "/v2/", nil, nil, true)
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Basic realm="airlock"`) || errCode(t, body) != "UNAUTHORIZED" {
		t.Errorf("anonymous GET /v2/ with anonymousPull off = %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, _ := h.do("GET", "/v2/", nil, nil, false); resp.StatusCode != 200 {
		t.Errorf("GET /v2/ with credentials = %d, want 200", resp.StatusCode)
	}
	h.pass = "wrong"
	if resp, _ := h.do("GET", "/v2/", nil, nil, false); resp.StatusCode != 401 {
		t.Errorf("GET /v2/ with a wrong password = %d, want 401", resp.StatusCode)
	}
	h.user = "nobody"
	if resp, _ := h.do("GET", "/v2/", nil, nil, false); resp.StatusCode != 401 {
		t.Errorf("GET /v2/ with an unknown user = %d, want 401", resp.StatusCode)
	}
}

func TestReferrers(t *testing.T) {
	h := newHarness(t, true)
	subject, sm := h.pushImage("r", "v1", []byte("x"))
	empty := h.pushBlob("r", []byte("{}"))
	art := func(at string, subj oci.Digest, size int) []byte {
		return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"artifactType":%q,"config":{"mediaType":%q,"digest":%q,"size":2},"layers":[],"subject":{"mediaType":%q,"digest":%q,"size":%d}}`,
			oci.MediaTypeImageManifest, at, oci.MediaTypeEmptyJSON, empty, oci.MediaTypeImageManifest, subj, size))
	}
	mt := map[string]string{"Content-Type": oci.MediaTypeImageManifest}
	resp, body := h.do("PUT", "/v2/r/manifests/sbom", art("application/vnd.example.sbom", subject, len(sm)), mt, false)
	if resp.StatusCode != 201 || resp.Header.Get("OCI-Subject") != string(subject) {
		t.Fatalf("PUT referrer = %d %s OCI-Subject %q", resp.StatusCode, body, resp.Header.Get("OCI-Subject"))
	}
	h.do("PUT", "/v2/r/manifests/sig", art("application/vnd.example.sig", subject, len(sm)), mt, false)
	absent := oci.SHA256.FromBytes([]byte("not pushed yet"))
	h.do("PUT", "/v2/r/manifests/early", art("application/vnd.example.sig", absent, 5), mt, false)

	count := func(path string) (int, string) {
		resp, body := h.do("GET", path, nil, nil, true)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != oci.MediaTypeImageIndex {
			t.Fatalf("GET %s = %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var idx oci.Index
		json.Unmarshal(body, &idx)
		return len(idx.Manifests), resp.Header.Get("OCI-Filters-Applied")
	}
	if n, _ := count("/v2/r/referrers/" + string(subject)); n != 2 {
		t.Errorf("referrers = %d, want 2", n)
	}
	if n, f := count("/v2/r/referrers/" + string(subject) + "?artifactType=application/vnd.example.sbom"); n != 1 || f != "artifactType" {
		t.Errorf("filtered referrers = %d (filters %q), want 1 artifactType", n, f)
	}
	if n, _ := count("/v2/r/referrers/" + string(absent)); n != 1 {
		t.Errorf("referrers of an absent subject = %d, want 1", n)
	}
	if n, _ := count("/v2/unknown/referrers/" + string(absent)); n != 0 {
		t.Errorf("referrers in an unknown repo = %d, want 0", n)
	}
}

func TestTagPagination(t *testing.T) {
	h := newHarness(t, true)
	d, m := h.pushImage("r", "b", []byte("x"))
	_ = d
	for _, tag := range []string{"d", "a", "c"} {
		h.do("PUT", "/v2/r/manifests/"+tag, m, map[string]string{"Content-Type": oci.MediaTypeImageManifest}, false)
	}
	resp, body := h.do("GET", "/v2/r/tags/list?n=2", nil, nil, true)
	if string(body) != `{"name":"r","tags":["a","b"]}` || !strings.Contains(resp.Header.Get("Link"), "last=b") {
		t.Errorf("n=2 = %s Link %q", body, resp.Header.Get("Link"))
	}
	_, body = h.do("GET", "/v2/r/tags/list?n=2&last=b", nil, nil, true)
	if string(body) != `{"name":"r","tags":["c","d"]}` {
		t.Errorf("n=2&last=b = %s", body)
	}
	resp, body = h.do("DELETE", "/v2/r/manifests/c", nil, nil, false)
	if resp.StatusCode != 202 {
		t.Fatalf("DELETE tag = %d %s", resp.StatusCode, body)
	}
	_, body = h.do("GET", "/v2/r/tags/list", nil, nil, true)
	if string(body) != `{"name":"r","tags":["a","b","d"]}` {
		t.Errorf("after tag delete = %s", body)
	}
	_, body = h.do("GET", "/v2/_catalog", nil, nil, true)
	if string(body) != `{"repositories":["r"]}` {
		t.Errorf("catalog = %s", body)
	}
}

func TestCrossMount(t *testing.T) {
	h := newHarness(t, true)
	d := h.pushBlob("src", []byte("shared"))
	resp, _ := h.do("POST", "/v2/dst/blobs/uploads/?mount="+string(d)+"&from=src", nil, nil, false)
	if resp.StatusCode != 201 || resp.Header.Get("Location") != "/v2/dst/blobs/"+string(d) {
		t.Errorf("mount = %d %q, want 201", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = h.do("POST", "/v2/dst2/blobs/uploads/?mount="+string(d)+"&from=nothere", nil, nil, false)
	if resp.StatusCode != 202 {
		t.Errorf("mount from a repo without the blob = %d, want 202 (a fresh upload)", resp.StatusCode)
	}
	if resp, _ := h.do("GET", "/v2/dst2/blobs/"+string(d), nil, nil, true); resp.StatusCode != 404 {
		t.Errorf("blob visible in a repo it was never pushed or mounted to: %d", resp.StatusCode)
	}
}

// Docker-style clients send credentials only after GET /v2/ is challenged,
// so with users configured the version check is challenged even though
// anonymous pulls are allowed; a challenged client without credentials
// ("Basic Og==") still pulls.
func TestVersionCheckChallengedWithUsers(t *testing.T) {
	h := newHarness(t, true)
	h.pushImage("r", "v1", []byte("x"))
	resp, _ := h.do("GET", "/v2/", nil, nil, true)
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("anonymous GET /v2/ with users = %d %q, want a 401 challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, _ := h.do("GET", "/v2/", nil, nil, false); resp.StatusCode != 200 {
		t.Errorf("GET /v2/ with credentials = %d, want 200", resp.StatusCode)
	}
	resp, _ = h.do("GET", "/v2/r/manifests/v1", nil, map[string]string{"Authorization": "Basic Og=="}, true)
	if resp.StatusCode != 200 {
		t.Errorf("pull with empty Basic credentials = %d, want 200 (anonymous)", resp.StatusCode)
	}
}
