package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/registry"
)

// heldEOFUpstream serves the fake's blob bodies whole but holds back their
// end (EOF) until release is closed: the fill has written every byte, yet
// the digest cannot have verified.
type heldEOFUpstream struct {
	*fakeUpstream
	release chan struct{}
}

func (h *heldEOFUpstream) GetBlob(ctx context.Context, host, repo string, d oci.Digest) (io.ReadCloser, int64, error) {
	body, size, err := h.fakeUpstream.GetBlob(ctx, host, repo, d)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(io.MultiReader(body, gatedReader{h.release, bytes.NewReader(nil)})), size, nil
}

// watchedStore is the cache as the registry sees it, except that the fill
// readers it hands out report each call of Verified on waiting before
// forwarding it. A test then tells "answered before the digest could
// verify" from "waiting for the verification" without timing anything.
type watchedStore struct {
	*Store
	waiting chan struct{}
}

func (w *watchedStore) OpenBlob(ctx context.Context, repo string, d oci.Digest) (io.ReadSeekCloser, int64, error) {
	r, size, err := w.Store.OpenBlob(ctx, repo, d)
	if err != nil {
		return nil, 0, err
	}
	if _, isFile := r.(*os.File); isFile {
		return r, size, nil
	}
	return &watchedReader{ReadSeekCloser: r, waiting: w.waiting}, size, nil
}

type watchedReader struct {
	io.ReadSeekCloser
	waiting chan struct{}
}

func (r *watchedReader) Verified(ctx context.Context) error {
	select {
	case r.waiting <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if v, ok := r.ReadSeekCloser.(interface{ Verified(context.Context) error }); ok {
		return v.Verified(ctx)
	}
	return nil
}

func (r *watchedReader) StreamToEnd() {
	if s, ok := r.ReadSeekCloser.(interface{ StreamToEnd() }); ok {
		s.StreamToEnd()
	}
}

func (r *watchedReader) WriteTo(w io.Writer) (int64, error) {
	return r.ReadSeekCloser.(io.WriterTo).WriteTo(w)
}

// rangeRig is the real cache behind the real registry handler on loopback,
// fetching one 1 MiB blob from a heldEOFUpstream.
type rangeRig struct {
	s        *Store
	bs       *blobstore.Store
	up       *heldEOFUpstream
	url      string // of the blob, path style
	client   *http.Client
	waiting  chan struct{}
	content  []byte // what the digest names
	d        oci.Digest
	releaseO sync.Once
}

const rangeBlobSize = 1 << 20

func newRangeRig(t *testing.T, corrupt bool) *rangeRig {
	t.Helper()
	fake := newFake()
	rig := &rangeRig{content: random(rangeBlobSize), waiting: make(chan struct{}, 16)}
	rig.d = fake.addBlob(rig.content)
	fake.corrupt[rig.d] = corrupt
	rig.up = &heldEOFUpstream{fakeUpstream: fake, release: make(chan struct{})}
	bs, err := blobstore.Open(t.TempDir(), blobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{CacheRules: []Rule{{Name: "mcr", SourceRepo: "mcr.microsoft.com/*", TargetRepo: "aks/*"}}}
	cfg.SetDefaults()
	cfg.UpstreamTimeout = 2 * time.Second
	s, err := New(cfg, Deps{Local: registry.NewLocalStore(bs), Blobs: bs, Upstream: rig.up})
	if err != nil {
		t.Fatal(err)
	}
	rig.s, rig.bs = s, bs
	anon := true
	reg, err := registry.New(&registry.Config{AnonymousPull: &anon}, registry.Deps{Store: &watchedStore{Store: s, waiting: rig.waiting}, Resolver: s})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg.Handler())
	rig.url = srv.URL + "/v2/aks/app/blobs/" + string(rig.d)
	rig.client = srv.Client()
	t.Cleanup(func() {
		rig.release()
		waitFills(t, s)
		srv.Close()
	})
	return rig
}

// release lets the upstream end the body: the fill verifies (or fails).
func (r *rangeRig) release() { r.releaseO.Do(func() { close(r.up.release) }) }

// waitFill waits until a fill for the rig's blob is registered.
func (r *rangeRig) waitFill(t *testing.T) {
	t.Helper()
	for i := 0; i < 500; i++ {
		r.s.fillsMu.Lock()
		_, ok := r.s.fills[r.d]
		r.s.fillsMu.Unlock()
		if ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no fill registered after 5s")
}

// checkCached reports whether the blob ended up stored, and says so when
// that is not what the test wants.
func (r *rangeRig) checkCached(t *testing.T, want bool) {
	t.Helper()
	waitFills(t, r.s)
	_, err := r.bs.BlobLinked("aks/app", r.d)
	if got := err == nil; got != want {
		t.Errorf("blob cached after the fill = %v (%v), want %v", got, err, want)
	}
	if n := r.up.blobGets.Load(); n != 1 {
		t.Errorf("upstream blob GETs = %d, want 1", n)
	}
}

type getResult struct {
	status int
	header http.Header
	body   []byte
	err    error // sending, or reading the body (an aborted response)
}

func (r *rangeRig) get(hdr map[string]string) getResult {
	req, err := http.NewRequest(http.MethodGet, r.url, nil)
	if err != nil {
		return getResult{err: err}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return getResult{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return getResult{status: resp.StatusCode, header: resp.Header, body: body, err: err}
}

// span is bytes [off, off+n) of the blob.
type span struct{ off, n int64 }

// contentParts returns the parts of a 206 answer: one from Content-Range,
// or each part of a multipart/byteranges body.
func contentParts(res getResult) (map[string][]byte, error) {
	mt, params, err := mime.ParseMediaType(res.header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		return map[string][]byte{res.header.Get("Content-Range"): res.body}, nil
	}
	parts := map[string][]byte{}
	mr := multipart.NewReader(bytes.NewReader(res.body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return parts, nil
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		parts[p.Header.Get("Content-Range")] = b
	}
}

// checkParts says where a 206 answer differs from the blob's spans.
func checkParts(t *testing.T, what string, res getResult, content []byte, spans []span) {
	t.Helper()
	if res.status != http.StatusPartialContent || res.err != nil {
		t.Errorf("%s = %d, %d bytes, %v; want 206 and a clean body", what, res.status, len(res.body), res.err)
		return
	}
	parts, err := contentParts(res)
	if err != nil {
		t.Errorf("%s: reading the multipart body: %v", what, err)
		return
	}
	if len(parts) != len(spans) {
		t.Errorf("%s = %d parts, want %d", what, len(parts), len(spans))
	}
	for _, sp := range spans {
		cr := fmt.Sprintf("bytes %d-%d/%d", sp.off, sp.off+sp.n-1, len(content))
		got, ok := parts[cr]
		if !ok {
			t.Errorf("%s: no part %q among %d", what, cr, len(parts))
			continue
		}
		if !bytes.Equal(got, content[sp.off:sp.off+sp.n]) {
			t.Errorf("%s: part %q = %d bytes that differ from the blob's", what, cr, len(got))
		}
	}
}

// A range that stops before the blob's end cannot be checked by the client
// (it never sees the whole blob), so it is answered only from verified
// content: it waits for the fill's verification. Wrong bytes from the
// upstream give a clean OCI error, never a 206; right bytes a 206 with
// them. The reproduction: Range bytes=0-99 on a miss of a blob the
// upstream corrupts answered 206 with 100 bytes.
func TestRangeNotReachingEndServesOnlyVerifiedBytes(t *testing.T) {
	tests := []struct {
		name  string
		rng   string
		spans []span
		join  bool // another client's whole GET started the fill
	}{
		{name: "first 100 bytes", rng: "bytes=0-99", spans: []span{{0, 100}}},
		{name: "middle", rng: "bytes=100-199", spans: []span{{100, 100}}},
		{name: "two ranges", rng: "bytes=0-9,20-29", spans: []span{{0, 10}, {20, 10}}},
		{name: "one byte short of the end", rng: "bytes=0-" + strconv.Itoa(rangeBlobSize-2), spans: []span{{0, rangeBlobSize - 1}}},
		{name: "joining a running fill", rng: "bytes=0-99", spans: []span{{0, 100}}, join: true},
	}
	for _, tt := range tests {
		for _, corrupt := range []bool{true, false} {
			name := tt.name + map[bool]string{true: " corrupt upstream", false: " good upstream"}[corrupt]
			t.Run(name, func(t *testing.T) {
				rig := newRangeRig(t, corrupt)
				var first chan getResult
				if tt.join {
					first = make(chan getResult, 1)
					go func() { first <- rig.get(nil) }()
					rig.waitFill(t)
				}
				done := make(chan getResult, 1)
				go func() { done <- rig.get(map[string]string{"Range": tt.rng}) }()
				var res getResult
				early := false
				select {
				case res = <-done:
					early = true // answered while the upstream held back the end
				case <-rig.waiting:
				}
				rig.release()
				if !early {
					res = <-done
				}
				t.Logf("GET Range %s: %d, %d bytes, Content-Range %q, body error %v", tt.rng, res.status, len(res.body), res.header.Get("Content-Range"), res.err)
				if early {
					t.Errorf("GET Range %s = %d with %d bytes before the upstream ended the body (the digest could not have verified), want the answer to wait for the verification", tt.rng, res.status, len(res.body))
				}
				if corrupt {
					if res.status == http.StatusPartialContent || res.status < 400 {
						t.Errorf("GET Range %s of a blob the upstream corrupts = %d with %d bytes, want an OCI error", tt.rng, res.status, len(res.body))
					} else if !bytes.Contains(res.body, []byte(`"UNAVAILABLE"`)) || !bytes.Contains(res.body, []byte("nothing was cached")) {
						t.Errorf("GET Range %s of a blob the upstream corrupts = %d %s, want UNAVAILABLE saying nothing was cached", tt.rng, res.status, res.body)
					}
				} else {
					checkParts(t, "GET Range "+tt.rng, res, rig.content, tt.spans)
				}
				if tt.join {
					f := <-first
					if corrupt && f.err == nil && f.status == http.StatusOK {
						t.Errorf("the whole GET that started the fill = 200 with a clean body of %d bytes, want it aborted", len(f.body))
					}
					if !corrupt && (f.err != nil || !bytes.Equal(f.body, rig.content)) {
						t.Errorf("the whole GET that started the fill = %d, %d bytes, %v; want the blob", f.status, len(f.body), f.err)
					}
				}
				rig.checkCached(t, !corrupt)
			})
		}
	}
}

// A response that includes the blob's last byte streams while the fill
// runs, but that byte is held until the digest verified: on a mismatch the
// response is cut before its end, so the client cannot take it for whole.
// The test reads everything but the last 64 KiB (more than the server's
// buffers) while the upstream still holds back the end of the body, then
// lets it end: a server that sent the last byte early would have completed
// the response already.
func TestResponseReachingEndHoldsLastByteUntilVerified(t *testing.T) {
	const size = rangeBlobSize
	tests := []struct {
		name   string
		hdr    map[string]string
		status int
		spans  []span // nil: the whole blob
	}{
		{name: "whole blob", status: http.StatusOK},
		{name: "whole blob conditional", hdr: map[string]string{"If-None-Match": `"sha256:other"`}, status: http.StatusOK},
		{name: "open range", hdr: map[string]string{"Range": "bytes=524288-"}, status: http.StatusPartialContent, spans: []span{{524288, size - 524288}}},
		{name: "suffix", hdr: map[string]string{"Range": "bytes=-300000"}, status: http.StatusPartialContent, spans: []span{{size - 300000, 300000}}},
		{name: "range ending at the last byte", hdr: map[string]string{"Range": "bytes=100-" + strconv.Itoa(size-1)}, status: http.StatusPartialContent, spans: []span{{100, size - 100}}},
		{name: "two ranges, the second to the end", hdr: map[string]string{"Range": "bytes=0-9,-300000"}, status: http.StatusPartialContent, spans: []span{{0, 10}, {size - 300000, 300000}}},
	}
	for _, tt := range tests {
		for _, corrupt := range []bool{true, false} {
			name := tt.name + map[bool]string{true: " corrupt upstream", false: " good upstream"}[corrupt]
			t.Run(name, func(t *testing.T) {
				rig := newRangeRig(t, corrupt)
				req, err := http.NewRequest(http.MethodGet, rig.url, nil)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range tt.hdr {
					req.Header.Set(k, v)
				}
				resp, err := rig.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != tt.status || resp.ContentLength < 128<<10 {
					t.Fatalf("GET %v while the fill runs = %d, Content-Length %d; want %d and a streamed body", tt.hdr, resp.StatusCode, resp.ContentLength, tt.status)
				}
				head := make([]byte, resp.ContentLength-64<<10)
				if _, err := io.ReadFull(resp.Body, head); err != nil {
					t.Fatalf("reading all but the last 64 KiB while the upstream holds back the end: %v", err)
				}
				rig.release()
				rest, err := io.ReadAll(resp.Body)
				body := append(head, rest...)
				t.Logf("GET %v: %d, %d of %d bytes, body error %v", tt.hdr, resp.StatusCode, len(body), resp.ContentLength, err)
				if corrupt {
					if err == nil || int64(len(body)) >= resp.ContentLength {
						t.Errorf("GET %v of a blob the upstream corrupts = %d bytes of %d and a clean end, want the response cut before its end", tt.hdr, len(body), resp.ContentLength)
					}
					rig.checkCached(t, false)
					return
				}
				res := getResult{status: resp.StatusCode, header: resp.Header, body: body, err: err}
				if tt.spans == nil {
					if err != nil || !bytes.Equal(body, rig.content) {
						t.Errorf("GET %v = %d bytes, %v; want the %d bytes of the blob", tt.hdr, len(body), err, size)
					}
				} else {
					checkParts(t, fmt.Sprintf("GET %v", tt.hdr), res, rig.content, tt.spans)
				}
				rig.checkCached(t, true)
			})
		}
	}
}

// HEAD on a miss answers with the upstream's size while the fill runs (it
// sends no content), and an error once the fill has failed.
func TestHeadOnMissAnswersSize(t *testing.T) {
	rig := newRangeRig(t, true)
	req, err := http.NewRequest(http.MethodHead, rig.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rig.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != rangeBlobSize {
		t.Errorf("HEAD on a miss = %d, Content-Length %d; want 200, %d", resp.StatusCode, resp.ContentLength, rangeBlobSize)
	}
	rig.release()
	rig.checkCached(t, false)
	if res := rig.get(map[string]string{"Range": "bytes=0-99"}); res.status == http.StatusPartialContent || !strings.Contains(string(res.body), "UNAVAILABLE") {
		t.Errorf("GET Range after the failed fill = %d %q, want UNAVAILABLE", res.status, res.body)
	}
}
