//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestObjStoreTwoProcesses: two airlock processes on one container or
// bucket (E2E_STORAGE) serve one registry: an upload started on A is
// continued and finished on B, an image pushed through A pulls through B,
// and concurrent pushes of one tag through both leave the tag on one of
// the two manifests, intact.
func TestObjStoreTwoProcesses(t *testing.T) {
	needObjectStorage(t)
	const repo = "e2e/replicas"
	users := map[string]string{"ci": "ci-e2e-password"}
	a := startAirlock(t, regOptions{anonymousPull: true, users: users})
	b := startAirlock(t, regOptions{anonymousPull: true, users: users, storageURL: a.storageURL})
	ca, cb := newOCIClient(a), newOCIClient(b)

	t.Run("upload started on A finishes on B", func(t *testing.T) {
		data := seededBytes(77, 3<<20)
		d := sha256Digest(data)
		loc := ca.startUpload(t, repo)
		chunks := [][]byte{data[:1<<20], data[1<<20 : 2<<20]}
		off := 0
		for i, chunk := range chunks {
			hdr := http.Header{
				"Content-Type":  {"application/octet-stream"},
				"Content-Range": {fmt.Sprintf("%d-%d", off, off+len(chunk)-1)},
			}
			resp := ca.do(t, http.MethodPatch, loc, hdr, chunk)
			if resp.status != http.StatusAccepted {
				t.Fatalf("PATCH %d on A = %d %s, want 202", i+1, resp.status, resp.body)
			}
			off += len(chunk)
			if got, want := resp.header.Get("Range"), fmt.Sprintf("0-%d", off-1); got != want {
				t.Errorf("PATCH %d on A: Range %q, want %q", i+1, got, want)
			}
			loc = ca.location(t, resp)
		}
		onB := b.url(pathAndQuery(t, loc))
		if resp := cb.do(t, http.MethodGet, onB, nil, nil); resp.status != http.StatusNoContent || resp.header.Get("Range") != fmt.Sprintf("0-%d", off-1) {
			t.Errorf("GET of the upload on B = %d, Range %q; want 204, 0-%d", resp.status, resp.header.Get("Range"), off-1)
		}
		hdr := http.Header{"Content-Type": {"application/octet-stream"}}
		resp := cb.do(t, http.MethodPut, withQuery(onB, "digest", d), hdr, data[off:])
		if resp.status != http.StatusCreated {
			t.Fatalf("PUT ?digest= of the last chunk on B = %d %s, want 201", resp.status, resp.body)
		}
		for _, r := range []*registry{a, b} {
			if got := getDigest(t, newOCIClient(r), "/v2/"+repo+"/blobs/"+d); got != d {
				t.Errorf("GET of the blob through %s hashes to %s, want %s", r.addr, got, d)
			}
		}
		if names := a.objectNames(t, "uploads"); len(names) != 0 {
			t.Errorf("objects under uploads/ after the upload finished: %v, want none", names)
		}
	})

	t.Run("push through A, pull through B", func(t *testing.T) {
		md, blobs := ca.pushImage(t, repo, "v1", 78, 2<<20)
		resp := cb.do(t, http.MethodGet, "/v2/"+repo+"/manifests/v1", http.Header{"Accept": {mtManifest}}, nil)
		if resp.status != http.StatusOK || sha256Digest(resp.body) != md {
			t.Fatalf("GET manifests/v1 through B = %d, digest %s; want 200, %s", resp.status, sha256Digest(resp.body), md)
		}
		for _, d := range blobs[:2] {
			if got := getDigest(t, cb, "/v2/"+repo+"/blobs/"+d); got != d {
				t.Errorf("GET blob %s through B hashes to %s", d, got)
			}
		}
	})

	t.Run("concurrent tag pushes through both", func(t *testing.T) {
		const rounds = 8
		type pushed struct {
			digest string
			body   []byte
		}
		images := make([]pushed, 2)
		for i, c := range []*ociClient{ca, cb} {
			md, _ := c.pushImage(t, repo, fmt.Sprintf("base-%d", i), uint64(80+i), 1<<20)
			resp := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+md, http.Header{"Accept": {mtManifest}}, nil)
			if resp.status != http.StatusOK {
				t.Fatalf("GET manifest %s = %d", md, resp.status)
			}
			images[i] = pushed{md, resp.body}
		}
		for round := range rounds {
			tag := fmt.Sprintf("race-%d", round)
			var wg sync.WaitGroup
			status := make([]int, 2)
			for i, c := range []*ociClient{ca, cb} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := tryDoBody(c, http.MethodPut, "/v2/"+repo+"/manifests/"+tag, http.Header{"Content-Type": {mtManifest}}, images[i].body)
					if err != nil {
						t.Errorf("PUT manifests/%s through %s: %v", tag, c.r.addr, err)
						return
					}
					status[i] = resp.status
				}()
			}
			wg.Wait()
			if status[0] != http.StatusCreated || status[1] != http.StatusCreated {
				t.Errorf("round %d: concurrent PUT manifests/%s = %v, want both 201", round, tag, status)
			}
			var seen []string
			for _, c := range []*ociClient{ca, cb} {
				resp := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+tag, http.Header{"Accept": {mtManifest}}, nil)
				d := sha256Digest(resp.body)
				if resp.status != http.StatusOK || (d != images[0].digest && d != images[1].digest) {
					t.Errorf("round %d: GET manifests/%s through %s = %d, digest %s; want 200 and one of the two manifests", round, tag, c.r.addr, resp.status, d)
				}
				if h := resp.header.Get("Docker-Content-Digest"); h != d {
					t.Errorf("round %d: GET manifests/%s: Docker-Content-Digest %s, body hashes to %s", round, tag, h, d)
				}
				seen = append(seen, d)
			}
			if seen[0] != seen[1] {
				t.Errorf("round %d: tag %s is %s through A and %s through B", round, tag, seen[0], seen[1])
			}
		}
		for _, im := range images {
			var m struct {
				Config descriptor   `json:"config"`
				Layers []descriptor `json:"layers"`
			}
			if err := json.Unmarshal(im.body, &m); err != nil {
				t.Fatal(err)
			}
			for _, d := range append([]descriptor{m.Config}, m.Layers...) {
				if got := getDigest(t, cb, "/v2/"+repo+"/blobs/"+d.Digest); got != d.Digest {
					t.Errorf("blob %s of manifest %s hashes to %s", d.Digest, im.digest, got)
				}
			}
		}
	})
	a.storedBlobs(t) // every object under blobs/ hashes to its name
}

// tryDoBody sends one request with body and reads the whole response;
// unlike ociClient.do it returns errors, so goroutines can use it.
func tryDoBody(c *ociClient, method, path string, hdr http.Header, body []byte) (*response, error) {
	req, err := http.NewRequest(method, c.r.url(path), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// pathAndQuery strips scheme and host from an absolute URL.
func pathAndQuery(t testing.TB, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.RequestURI()
}

// TestObjStoreDown: while its object storage (E2E_STORAGE) is stopped,
// airlock's /readyz answers 503 naming the storage, and blob and manifest
// GETs fail with 503 UNAVAILABLE naming the storage instead of hanging;
// once the storage is back /readyz turns 200 and the content pushed
// before is served again. First with the storage stopped under a running
// airlock, then with airlock started while it is stopped (docs/storage.md:
// "airlock starts anyway").
func TestObjStoreDown(t *testing.T) {
	b := needObjectStorage(t)
	const repo = "e2e/down"
	r := startAirlock(t, regOptions{anonymousPull: true, users: map[string]string{"ci": "ci-e2e-password"}})
	c := newOCIClient(r)
	md, blobs := c.pushImage(t, repo, "v1", 91, 1<<20)
	// The storage's name as airlock prints it: azblob://CONTAINER or s3://BUCKET.
	name, _, _ := strings.Cut(r.storageURL, "?")

	t.Run("storage stops under a running airlock", func(t *testing.T) {
		restart := b.stopUntilEnd(t)
		status, body := r.waitReadyz(t, http.StatusServiceUnavailable)
		t.Logf("/readyz with %s stopped: %d %q", b.name, status, body)
		checkDownReadyz(t, status, body, name)
		checkDownGETs(t, c, repo, blobs[1], name)
		if t.Failed() {
			t.Logf("airlock log (last lines):\n%s", r.proc.logTail(10))
		}
		restart()
		r.waitReadyz(t, http.StatusOK)
		checkServed(t, c, repo, md, blobs)
	})

	t.Run("airlock starts with the storage stopped", func(t *testing.T) {
		r.stop()
		restart := b.stopUntilEnd(t)
		if !r.startUnready(t) {
			t.Fatalf("airlock serve exited at start with %s stopped, want it to start with /readyz 503 (docs/storage.md \"When the storage is down\"); log:\n%s",
				b.name, r.proc.logTail(5))
		}
		status, body := r.readyz(t)
		t.Logf("/readyz with %s stopped: %d %q", b.name, status, body)
		checkDownReadyz(t, status, body, name)
		checkDownGETs(t, c, repo, blobs[1], name)
		restart()
		r.waitReadyz(t, http.StatusOK)
		checkServed(t, c, repo, md, blobs)
	})
}

// stopUntilEnd stops the storage server and returns the func that
// starts it again, which also runs when t ends if nobody called it.
func (b *objBackend) stopUntilEnd(t testing.TB) func() {
	b.stop()
	var once sync.Once
	restart := func() { once.Do(b.restart) }
	t.Cleanup(restart)
	return restart
}

// waitReadyz polls /readyz until it answers want, for up to 30 s (the
// storage is checked every 5 s), and returns its last answer.
func (r *registry) waitReadyz(t testing.TB, want int) (int, string) {
	t.Helper()
	start := time.Now()
	for {
		status, body := r.readyz(t)
		if status == want {
			t.Logf("/readyz %d after %s", status, time.Since(start).Round(time.Millisecond))
			return status, body
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("/readyz = %d %q after %s, want %d", status, body, time.Since(start).Round(time.Second), want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func checkDownReadyz(t testing.TB, status int, body, storage string) {
	t.Helper()
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "storage") || !strings.Contains(body, storage) {
		t.Errorf("/readyz with the storage down = %d %q, want 503 naming %s", status, body, storage)
	}
}

// checkDownGETs: a blob GET and a manifest GET answer 503 UNAVAILABLE
// naming the storage (the client waits up to 60 s: a hang fails).
func checkDownGETs(t testing.TB, c *ociClient, repo, blob, storage string) {
	t.Helper()
	hc := *c.hc
	hc.Timeout = 60 * time.Second
	cc := *c
	cc.hc = &hc
	for _, path := range []string{"/v2/" + repo + "/blobs/" + blob, "/v2/" + repo + "/manifests/v1"} {
		start := time.Now()
		resp, err := tryDo(&cc, http.MethodGet, path, http.Header{"Accept": {mtManifest}})
		if err != nil {
			t.Errorf("GET %s with the storage down: %v, want a 503 answer", path, err)
			continue
		}
		t.Logf("GET %s with the storage down: %d in %s: %s", path, resp.status, time.Since(start).Round(time.Millisecond), resp.body)
		checkOCIError(t, "GET "+path+" with the storage down", resp, []int{http.StatusServiceUnavailable}, []string{"UNAVAILABLE"})
		if !bytes.Contains(resp.body, []byte(storage)) {
			t.Errorf("GET %s with the storage down: body %s does not name the storage %s", path, resp.body, storage)
		}
	}
}

// checkServed: manifest md tagged v1 and its blobs are served whole.
func checkServed(t testing.TB, c *ociClient, repo, md string, blobs []string) {
	t.Helper()
	resp := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/v1", http.Header{"Accept": {mtManifest}}, nil)
	if resp.status != http.StatusOK || sha256Digest(resp.body) != md {
		t.Errorf("GET manifests/v1 with the storage back = %d, digest %s; want 200, %s", resp.status, sha256Digest(resp.body), md)
	}
	for _, d := range blobs[:2] {
		if got := getDigest(t, c, "/v2/"+repo+"/blobs/"+d); got != d {
			t.Errorf("GET blob %s with the storage back hashes to %s", d, got)
		}
	}
}

// startUnready starts r's process and waits only until its admin
// listener answers /readyz (with any status); false when the process
// exited instead.
func (r *registry) startUnready(t testing.TB) bool {
	t.Helper()
	r.starts++
	logPath := filepath.Join(r.dir, fmt.Sprintf("%s-%d.log", r.kind, r.starts))
	r.proc = startProcessEnv(t, r.kind, logPath, r.env, r.bin, r.args...)
	hc := &http.Client{Timeout: 15 * time.Second}
	err := waitFor(r.proc, time.Minute, func() bool {
		resp, err := hc.Get("http://" + r.adminAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	if err != nil && !r.proc.exited() {
		t.Fatalf("start %s: %v\nlog:\n%s", r.kind, err, r.proc.logTail(40))
	}
	return err == nil
}

// readyz returns the status and body of airlock's /readyz.
func (r *registry) readyz(t testing.TB) (int, string) {
	t.Helper()
	hc := &http.Client{Timeout: time.Minute}
	resp, err := hc.Get("http://" + r.adminAddr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestObjStoreRedirect: with registry.storage.redirect (E2E_STORAGE), a
// blob GET answers 307 to a signed storage URL that a client without
// credentials can GET for the exact bytes; HEAD still answers 200 with
// the size; a second airlock on the same storage without redirect
// streams the blob.
func TestObjStoreRedirect(t *testing.T) {
	needObjectStorage(t)
	const repo = "e2e/redirect"
	users := map[string]string{"ci": "ci-e2e-password"}
	r := startAirlock(t, regOptions{anonymousPull: true, users: users, redirect: true})
	c := newOCIClient(r)
	data := seededBytes(101, 5<<20+17)
	d := c.pushBlob(t, repo, data)
	path := "/v2/" + repo + "/blobs/" + d

	resp := c.anonymous().do(t, http.MethodGet, path, nil, nil)
	loc := resp.header.Get("Location")
	t.Logf("GET %s with redirect: %d, Location %.120s…", path, resp.status, loc)
	if resp.status != http.StatusTemporaryRedirect || loc == "" {
		t.Fatalf("GET of a blob with redirect = %d, Location %q; want 307 and a Location", resp.status, loc)
	}
	u, err := url.Parse(loc)
	if err != nil || u.Hostname() != "127.0.0.1" {
		t.Errorf("Location %q: host %q, want the storage on 127.0.0.1 (%v)", loc, u.Hostname(), err)
	}
	plain := &http.Client{Timeout: time.Minute, Transport: &http.Transport{}} // no proxy, no credentials
	got, err := plain.Get(loc)
	if err != nil {
		t.Fatalf("GET Location: %v", err)
	}
	body, err := io.ReadAll(got.Body)
	got.Body.Close()
	if err != nil || got.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Errorf("GET Location = %d, %d bytes (equal %t), %v; want 200 and the %d bytes pushed", got.StatusCode, len(body), bytes.Equal(body, data), err, len(data))
	}

	resp = c.anonymous().do(t, http.MethodHead, path, nil, nil)
	if resp.status != http.StatusOK || resp.header.Get("Content-Length") != fmt.Sprint(len(data)) || resp.header.Get("Docker-Content-Digest") != d {
		t.Errorf("HEAD with redirect = %d, Content-Length %q, Docker-Content-Digest %q; want 200, %d, %s",
			resp.status, resp.header.Get("Content-Length"), resp.header.Get("Docker-Content-Digest"), len(data), d)
	}

	off := startAirlock(t, regOptions{anonymousPull: true, users: users, storageURL: r.storageURL})
	resp = newOCIClient(off).anonymous().do(t, http.MethodGet, path, nil, nil)
	if resp.status != http.StatusOK || !bytes.Equal(resp.body, data) {
		t.Errorf("GET without redirect = %d, %d bytes (equal %t), Location %q; want 200 and the bytes streamed",
			resp.status, len(resp.body), bytes.Equal(resp.body, data), resp.header.Get("Location"))
	}
}

// TestObjStoreMetrics: after a push and a pull on object storage
// (E2E_STORAGE), the admin /metrics counts the storage requests by op and
// result, and the bytes both ways.
func TestObjStoreMetrics(t *testing.T) {
	needObjectStorage(t)
	const repo = "e2e/metrics"
	r := startAirlock(t, regOptions{anonymousPull: true, users: map[string]string{"ci": "ci-e2e-password"}})
	c := newOCIClient(r)
	md, blobs := c.pushImage(t, repo, "v1", 111, 1<<20)
	if resp := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/v1", http.Header{"Accept": {mtManifest}}, nil); resp.status != http.StatusOK || sha256Digest(resp.body) != md {
		t.Fatalf("GET manifests/v1 = %d", resp.status)
	}
	for _, d := range blobs[:2] {
		if got := getDigest(t, c, "/v2/"+repo+"/blobs/"+d); got != d {
			t.Fatalf("GET blob %s hashes to %s", d, got)
		}
	}
	text := r.scrapeMetrics(t)
	var series []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "airlock_storage_requests_total{") {
			series = append(series, line)
		}
	}
	t.Logf("storage request series:\n%s", strings.Join(series, "\n"))
	total, found := metricSample(text, "airlock_storage_requests_total")
	if !found || total == 0 {
		t.Fatalf("airlock_storage_requests_total = %g (found %t), want > 0 after a push and a pull", total, found)
	}
	for _, s := range series {
		if !strings.Contains(s, `op="`) || !strings.Contains(s, `result="`) {
			t.Errorf("series %s lacks the op or result label", s)
		}
	}
	if ok, _ := metricSample(text, "airlock_storage_requests_total", `result="ok"`); ok == 0 {
		t.Errorf(`airlock_storage_requests_total{result="ok"} = 0, want > 0`)
	}
	for _, dir := range []string{"in", "out"} {
		if v, _ := metricSample(text, "airlock_storage_bytes_total", `direction="`+dir+`"`); v < 1<<20 {
			t.Errorf(`airlock_storage_bytes_total{direction=%q} = %g, want ≥ 1 MiB (a 1 MiB layer went %s)`, dir, v, dir)
		}
	}
	if v, found := metricSample(text, "airlock_storage_request_duration_seconds_count"); !found || v == 0 {
		t.Errorf("airlock_storage_request_duration_seconds_count = %g (found %t), want > 0", v, found)
	}
}
