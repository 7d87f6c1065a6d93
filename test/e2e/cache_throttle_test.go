//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCacheThrottledUpstream: with a 10 MiB/s link between airlock and the
// upstream and cold 64 MiB blobs,
//   - every client waiting on a fill receives bytes before the upstream
//     has finished sending;
//   - a client that leaves mid-fill does not stop it: the blob is committed
//     after one upstream GET and the next GET is a hit;
//   - Range requests on a cold blob answer 206 with the right bytes (a
//     range short of the end once the fill verified, a suffix streamed);
//   - kill -9 of airlock mid-fill leaves no partial blob: after a restart on
//     the same storage every stored blob hashes to its name, and the blob
//     then pulls correctly.
func TestCacheThrottledUpstream(t *testing.T) {
	skipUnlessAirlock(t)
	const (
		size = 64 << 20
		rate = 10 << 20 // bytes/s
		repo = "aks/aks-gpu-cuda-lts"
	)
	up := startUpstream(t)
	seeds := map[string]uint64{"waiters": 6401, "leaver": 6402, "range": 6403, "crash": 6404}
	digests := map[string]string{}
	for k, s := range seeds {
		digests[k] = seedBigBlob(t, up, repo, s, size)
	}
	px := startThrottleProxy(t, up.addr, rate)
	al := startCacheAirlock(t, cacheOptions{upstream: "http://" + px.addr})
	c := newOCIClient(al)
	pathStyle := func(d string) string { return "/v2/" + cacheTarget + "/" + repo + "/blobs/" + d }
	mirrorStyle := func(d string) string { return "/v2/" + repo + "/blobs/" + d + "?ns=" + mcrHost }
	fullTransfer := time.Duration(size) * time.Second / rate

	t.Run("every waiting client gets bytes before the upstream finishes", func(t *testing.T) {
		const clients = 4
		stagger := fullTransfer / 8
		d := digests["waiters"]
		var wg sync.WaitGroup
		res := make([]streamResult, clients)
		start := time.Now()
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i) * stagger)
				path := pathStyle(d)
				if i%2 == 1 {
					path = mirrorStyle(d)
				}
				res[i] = streamGET(c, path, start)
			}()
		}
		wg.Wait()
		upstreamEnd := px.lastWriteTime().Sub(start)
		t.Logf("upstream finished sending %s after %s (%s at %s/s)", mib(size), upstreamEnd.Round(time.Millisecond), mib(size), mib(rate))
		if upstreamEnd < fullTransfer*8/10 {
			t.Fatalf("the upstream finished after %s, want ≥ %s: the throttle did not hold", upstreamEnd, fullTransfer*8/10)
		}
		for i, r := range res {
			t.Logf("client %d: asked at %s, first byte at %s (%s before the upstream finished), done at %s, %s, %v",
				i, r.asked.Round(time.Millisecond), r.firstByte.Round(time.Millisecond), (upstreamEnd - r.firstByte).Round(time.Millisecond),
				r.done.Round(time.Millisecond), mib(r.n), r.err)
			if r.err != nil || r.status != http.StatusOK {
				t.Errorf("client %d: status %d, err %v; want 200", i, r.status, r.err)
				continue
			}
			if r.digest != d {
				t.Errorf("client %d got %s bytes hashing to %s, want %s", i, mib(r.n), r.digest, d)
			}
			if r.firstByte >= upstreamEnd {
				t.Errorf("client %d got its first byte at %s, after the upstream finished (%s): not streamed", i, r.firstByte, upstreamEnd)
			}
		}
		if n := up.waitBlobGETs(t, []string{d})[d]; n != 1 {
			t.Errorf("upstream GETs of %s = %d for %d clients, want exactly 1", d, n, clients)
		}
		t.Logf("%s", al.cacheMetrics(t))
	})

	t.Run("a client that leaves mid-fill leaves the blob committed", func(t *testing.T) {
		d := digests["leaver"]
		hits := al.metric(t, "airlock_cache_hits_total", `kind="blob"`)
		conn, err := net.Dial("tcp", al.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", pathStyle(d), al.addr)
		got, _ := io.CopyN(io.Discard, conn, 4<<20)
		conn.Close()
		left := time.Now()
		t.Logf("client closed its connection after %s", mib(got))
		if got < 4<<20 {
			t.Fatalf("client received %d bytes before leaving, want 4 MiB", got)
		}
		deadline := left.Add(2*fullTransfer + 10*time.Second)
		for {
			if al.hasBlob(t, d) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("blob %s not committed %s after its only client left", d, time.Since(left).Round(time.Second))
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("blob committed %s after the client left", time.Since(left).Round(time.Millisecond))
		if got := getDigest(t, c, pathStyle(d)); got != d {
			t.Errorf("GET after the fill hashes to %s, want %s", got, d)
		}
		if n := up.waitBlobGETs(t, []string{d})[d]; n != 1 {
			t.Errorf("upstream GETs of %s = %d, want exactly 1", d, n)
		}
		if h := al.metric(t, "airlock_cache_hits_total", `kind="blob"`) - hits; h < 1 {
			t.Errorf("airlock_cache_hits_total{kind=blob} rose by %g for the GET after the fill, want ≥ 1 (a hit)", h)
		}
	})

	t.Run("Range on a cold blob answers 206", func(t *testing.T) {
		d, seed := digests["range"], seeds["range"]
		type rng struct {
			header   string
			off, n   int64
			response *response
			err      error
			took     time.Duration
		}
		ranges := []*rng{
			{header: "bytes=1048576-2097151", off: 1 << 20, n: 1 << 20},
			{header: "bytes=-4096", off: size - 4096, n: 4096},
		}
		start := time.Now()
		var wg sync.WaitGroup
		for _, r := range ranges {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.response, r.err = tryDo(c, http.MethodGet, pathStyle(d), http.Header{"Range": {r.header}})
				r.took = time.Since(start)
			}()
		}
		wg.Wait()
		upstreamEnd := px.lastWriteTime().Sub(start)
		// The range short of the end is answered only once the fill has
		// verified the digest (see TestCacheRangeOnMiss), so it is not
		// expected before the upstream finished; the suffix streams.
		for _, r := range ranges {
			if r.err != nil {
				t.Errorf("GET Range %s of a cold blob: %v", r.header, r.err)
				continue
			}
			t.Logf("Range %s: %d, %d bytes, Content-Range %q, after %s (upstream finished after %s)",
				r.header, r.response.status, len(r.response.body), r.response.header.Get("Content-Range"), r.took.Round(time.Millisecond), upstreamEnd.Round(time.Millisecond))
			wantCR := fmt.Sprintf("bytes %d-%d/%d", r.off, r.off+r.n-1, size)
			if r.response.status != http.StatusPartialContent || r.response.header.Get("Content-Range") != wantCR {
				t.Errorf("GET Range %s of a cold blob = %d, Content-Range %q; want 206, %q", r.header, r.response.status, r.response.header.Get("Content-Range"), wantCR)
				continue
			}
			if want := seededRange(seed, size, r.off, r.n); !bytes.Equal(r.response.body, want) {
				t.Errorf("GET Range %s: %d bytes differ from bytes %d..%d of the blob", r.header, len(r.response.body), r.off, r.off+r.n-1)
			}
		}
		if n := up.waitBlobGETs(t, []string{d})[d]; n != 1 {
			t.Errorf("upstream GETs of %s = %d for two Range requests, want exactly 1", d, n)
		}
	})

	t.Run("kill -9 mid-fill leaves no partial blob", func(t *testing.T) {
		d := digests["crash"]
		from := px.forwarded.Load()
		client := make(chan streamResult, 1)
		go func() { client <- streamGET(c, pathStyle(d), time.Now()) }()
		deadline := time.Now().Add(2 * fullTransfer)
		for px.forwarded.Load()-from < size*3/8 {
			if time.Now().After(deadline) {
				t.Fatalf("only %s of %s came from the upstream after %s", mib(px.forwarded.Load()-from), mib(size), 2*fullTransfer)
			}
			time.Sleep(10 * time.Millisecond)
		}
		al.kill()
		cut := px.forwarded.Load() - from
		r := <-client
		t.Logf("kill -9 of airlock after %s of %s came from the upstream; the client had %s: %v", mib(cut), mib(size), mib(r.n), r.err)
		if r.err == nil && r.digest == d {
			t.Fatalf("the client got the whole blob before the kill: nothing was mid-fill")
		}
		partial := al.tmpFiles(t)
		t.Logf("storage tmp after the kill: %v", partial)
		var biggest int64
		for _, n := range partial {
			biggest = max(biggest, n)
		}
		if biggest < 1<<20 {
			t.Errorf("storage tmp holds no partial fill after the kill (%v): was the blob written elsewhere?", partial)
		}
		if _, ok := al.storedBlobs(t)[d]; ok {
			t.Fatalf("blob %s is stored under its digest after kill -9 mid-fill", d)
		}

		px.rate.Store(0) // the rest needs no slow link
		al.start()
		stored := al.storedBlobs(t) // every blob file hashes to its name
		if _, ok := stored[d]; ok {
			t.Errorf("after the restart, blob %s is stored under its digest before any new fill", d)
		}
		for _, other := range []string{digests["waiters"], digests["leaver"], digests["range"]} {
			if _, ok := stored[other]; !ok {
				t.Errorf("after the restart, blob %s committed before the crash is missing", other)
			}
		}
		if left := al.tmpFiles(t); len(left) != 0 {
			t.Errorf("storage tmp after the restart = %v, want empty (temp files removed at start)", left)
		}
		if got := getDigest(t, c, pathStyle(d)); got != d {
			t.Errorf("GET after the restart hashes to %s, want %s", got, d)
		}
		if n := up.waitBlobGETs(t, []string{d})[d]; n != 2 {
			t.Errorf("upstream GETs of %s = %d, want 2 (the killed fill and the new one)", d, n)
		}
		if !al.eventuallyStored(t, d) {
			t.Errorf("blob %s not stored after the new fill", d)
		}
	})
	t.Logf("upstream blob GETs:%s", sortedCounts(up.blobGETs(t)))
}

// streamResult is what one streaming GET saw; times are since a common start.
type streamResult struct {
	status                 int
	asked, firstByte, done time.Duration
	n                      int64
	digest                 string
	err                    error
}

// streamGET GETs path and hashes the body, recording when the first body
// byte arrived.
func streamGET(c *ociClient, path string, start time.Time) streamResult {
	var r streamResult
	r.asked = time.Since(start)
	req, err := http.NewRequest(http.MethodGet, c.r.url(path), nil)
	if err != nil {
		r.err = err
		return r
	}
	p, q, _ := strings.Cut(path, "?")
	req.URL.Opaque, req.URL.RawQuery = p, q
	resp, err := c.hc.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	r.status = resp.StatusCode
	br := bufio.NewReaderSize(resp.Body, 1)
	if _, err := br.Peek(1); err != nil {
		r.err = fmt.Errorf("first byte: %w", err)
		r.done = time.Since(start)
		return r
	}
	r.firstByte = time.Since(start)
	h := sha256.New()
	r.n, r.err = io.Copy(h, br)
	r.done = time.Since(start)
	r.digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return r
}

// tryDo sends one request without a body and reads the whole response;
// unlike ociClient.do it returns errors, so goroutines can use it.
func tryDo(c *ociClient, method, path string, hdr http.Header) (*response, error) {
	req, err := http.NewRequest(method, c.r.url(path), nil)
	if err != nil {
		return nil, err
	}
	p, q, _ := strings.Cut(path, "?")
	req.URL.Opaque, req.URL.RawQuery = p, q
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, err
}
