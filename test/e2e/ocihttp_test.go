//go:build e2e

package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// ociClient speaks the OCI distribution API with plain net/http, so tests
// control every byte, header and status.
type ociClient struct {
	r          *registry
	hc         *http.Client
	user, pass string // empty: no Authorization header
}

func newOCIClient(r *registry) *ociClient {
	return &ociClient{r: r, hc: r.client(), user: r.user, pass: r.password}
}

// anonymous returns a client that sends no credentials.
func (c *ociClient) anonymous() *ociClient {
	cc := *c
	cc.user, cc.pass = "", ""
	return &cc
}

// as returns a client that sends user:pass.
func (c *ociClient) as(user, pass string) *ociClient {
	cc := *c
	cc.user, cc.pass = user, pass
	return &cc
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request. target is a path with query ("/v2/…") sent as is
// (no cleaning, no re-encoding) or an absolute URL (e.g. a Location).
func (c *ociClient) do(t testing.TB, method, target string, hdr http.Header, body []byte) *response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req := c.newRequest(t, method, target, rd)
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if body != nil {
		req.ContentLength = int64(len(body))
	}
	return c.send(t, req)
}

func (c *ociClient) newRequest(t testing.TB, method, target string, body io.Reader) *http.Request {
	t.Helper()
	u := target
	if strings.HasPrefix(target, "/") {
		u = c.r.url("")
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatalf("NewRequest(%s %s): %v", method, target, err)
	}
	if strings.HasPrefix(target, "/") {
		// Opaque keeps the path byte for byte ("..", "%2f" and all) and is
		// sent as the origin-form request target.
		path, query, _ := strings.Cut(target, "?")
		req.URL.Opaque = path
		req.URL.RawQuery = query
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	return req
}

func (c *ociClient) send(t testing.TB, req *http.Request) *response {
	t.Helper()
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

// location resolves the Location header of resp against the registry URL.
func (c *ociClient) location(t testing.TB, resp *response) string {
	t.Helper()
	loc := resp.header.Get("Location")
	if loc == "" {
		t.Fatalf("response %d has no Location header", resp.status)
	}
	base, _ := url.Parse(c.r.url("/"))
	u, err := base.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q: %v", loc, err)
	}
	return u.String()
}

// withQuery appends key=value to an upload location that may already have a
// query.
func withQuery(loc, key, value string) string {
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	return loc + sep + key + "=" + url.QueryEscape(value)
}

// startUpload POSTs a new upload session to repo and returns its location.
func (c *ociClient) startUpload(t testing.TB, repo string) string {
	t.Helper()
	resp := c.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil)
	if resp.status != http.StatusAccepted {
		t.Fatalf("POST /v2/%s/blobs/uploads/ = %d %s, want 202", repo, resp.status, resp.body)
	}
	return c.location(t, resp)
}

// pushBlob uploads data with POST then PUT ?digest= and returns its digest.
func (c *ociClient) pushBlob(t testing.TB, repo string, data []byte) string {
	t.Helper()
	d := sha256Digest(data)
	loc := c.startUpload(t, repo)
	hdr := http.Header{"Content-Type": {"application/octet-stream"}}
	resp := c.do(t, http.MethodPut, withQuery(loc, "digest", d), hdr, data)
	if resp.status != http.StatusCreated {
		t.Fatalf("PUT upload of %s to %s = %d %s, want 201", d, repo, resp.status, resp.body)
	}
	return d
}

// pushManifest PUTs a manifest and returns its digest.
func (c *ociClient) pushManifest(t testing.TB, repo, ref, mediaType string, body []byte) string {
	t.Helper()
	resp := c.do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, http.Header{"Content-Type": {mediaType}}, body)
	if resp.status != http.StatusCreated {
		t.Fatalf("PUT /v2/%s/manifests/%s = %d %s, want 201", repo, ref, resp.status, resp.body)
	}
	return sha256Digest(body)
}

func sha256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// ociErrorBody is the error envelope of the distribution spec.
type ociErrorBody struct {
	Errors []struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"errors"`
}

// checkOCIError reports unless resp has one of statuses (nil: any 4xx) and,
// for an error status, an OCI error envelope whose first code is one of
// codes (none given: the body is not checked).
func checkOCIError(t testing.TB, what string, resp *response, statuses []int, codes []string) {
	t.Helper()
	if statuses == nil && (resp.status < 400 || resp.status > 499) {
		t.Errorf("%s: status = %d (body %.300q), want a 4xx", what, resp.status, resp.body)
		return
	}
	if statuses != nil && !slices.Contains(statuses, resp.status) {
		t.Errorf("%s: status = %d (body %.300q), want one of %v", what, resp.status, resp.body, statuses)
		return
	}
	if len(codes) == 0 || resp.status < 400 {
		return
	}
	var e ociErrorBody
	if err := json.Unmarshal(resp.body, &e); err != nil || len(e.Errors) == 0 {
		t.Errorf("%s: body = %.300q, want OCI error JSON with code %v", what, resp.body, codes)
		return
	}
	if !slices.Contains(codes, e.Errors[0].Code) {
		t.Errorf("%s: error code = %s (%q), want one of %v", what, e.Errors[0].Code, e.Errors[0].Message, codes)
	}
}

// manifestJSON renders an OCI image manifest.
func manifestJSON(t testing.TB, config descriptor, layers []descriptor, annotations map[string]string) []byte {
	t.Helper()
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     mtManifest,
		"config":        config,
		"layers":        layers,
	}
	if annotations != nil {
		m["annotations"] = annotations
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type descriptor struct {
	MediaType    string `json:"mediaType"`
	Digest       string `json:"digest"`
	Size         int64  `json:"size"`
	ArtifactType string `json:"artifactType,omitempty"`
}

const (
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtIndex    = "application/vnd.oci.image.index.v1+json"
	mtConfig   = "application/vnd.oci.image.config.v1+json"
	mtLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtEmpty    = "application/vnd.oci.empty.v1+json"
)

// pushImage pushes a config and a layer of n seeded bytes and a manifest
// tagged ref; it returns the manifest digest and every digest stored.
func (c *ociClient) pushImage(t testing.TB, repo, ref string, seed uint64, n int) (string, []string) {
	t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := seededBytes(seed, n)
	cd := c.pushBlob(t, repo, cfg)
	ld := c.pushBlob(t, repo, layer)
	m := manifestJSON(t,
		descriptor{MediaType: mtConfig, Digest: cd, Size: int64(len(cfg))},
		[]descriptor{{MediaType: mtLayer, Digest: ld, Size: int64(len(layer))}}, nil)
	md := c.pushManifest(t, repo, ref, mtManifest, m)
	return md, []string{cd, ld, md}
}
