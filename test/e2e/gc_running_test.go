//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/porttest"
)

// TestGCWhileServing starts and stops a second `airlock serve` on the
// storage of a running one, then runs `airlock registry gc` (dry run, then
// --delete) on it, while three writes are in flight: a cold cache fill of a 24 MiB blob over a 2 MiB/s upstream link,
// a chunked push (one PATCH done, a second one half sent) and a monolithic
// push (POST ?digest= with half its body sent). A blob pushed completely
// but not yet referenced by a manifest is there too. Then:
//   - a client joining the fill after the GC streams the whole blob;
//   - the fill, the chunked push and the monolithic push all complete;
//   - the fill cost one upstream GET and the blob is then served warm;
//   - a manifest referencing the pushed blobs is accepted and pulls back;
//   - a later `gc --delete --grace 0s` removes exactly the one blob nothing
//     references, and leaves no temp file and no upload behind.
func TestGCWhileServing(t *testing.T) {
	skipUnlessAirlock(t)
	skipOnObjectStorage(t, "this test runs a second airlock and gc on a storage directory and reads its tmp and uploads directories; TestObjStore* cover gc on object storage")
	const (
		fillSize = 24 << 20
		fillRate = 2 << 20 // bytes/s from the upstream while the GC runs
		halfSent = 1 << 20 // bytes of each in-flight push body sent before the GC
		pushSize = 4 << 20
		upRepo   = "aks/gc-fill"
		repo     = "e2e/gc"
	)
	bin := needAirlock(t)

	// The upstream holds an image whose layer is the big blob, so the
	// cached manifest references it and GC keeps it.
	up := startUpstream(t)
	upc := newOCIClient(up)
	fillD := seedBigBlob(t, up, upRepo, 7101, fillSize)
	upCfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	upCfgD := upc.pushBlob(t, upRepo, upCfg)
	upManifest := manifestJSON(t, descriptor{MediaType: mtConfig, Digest: upCfgD, Size: int64(len(upCfg))},
		[]descriptor{{MediaType: mtLayer, Digest: fillD, Size: fillSize}}, nil)
	upManifestD := upc.pushManifest(t, upRepo, "v1", mtManifest, upManifest)

	px := startThrottleProxy(t, up.addr, fillRate)
	al := startGCAirlock(t, "http://"+px.addr, "")
	c := newOCIClient(al)
	cachePath := "/v2/" + cacheTarget + "/" + upRepo

	// Pull the manifest through the cache first (a quick fetch).
	resp := c.do(t, http.MethodGet, cachePath+"/manifests/v1", http.Header{"Accept": {mtManifest}}, nil)
	if resp.status != http.StatusOK || sha256Digest(resp.body) != upManifestD {
		t.Fatalf("GET cached manifest = %d (%s), want 200 with %s", resp.status, sha256Digest(resp.body), upManifestD)
	}

	// A blob pushed completely whose manifest comes later, and one nothing
	// will ever reference.
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["gc"]}}`)
	cfgD := c.pushBlob(t, repo, cfg)
	orphanD := c.pushBlob(t, repo, seededBytes(7104, 1<<20))

	// (a) cold cache fill: one client streams it over the slow link.
	start := time.Now()
	first := make(chan streamResult, 1)
	go func() { first <- streamGET(c, cachePath+"/blobs/"+fillD, start) }()
	waitCond(t, "the fill has fetched 2 MiB from the upstream", func() bool { return px.forwarded.Load() >= 2<<20 })

	// (b) chunked push: one PATCH done, the second one in flight.
	chunked := seededBytes(7102, 2*pushSize)
	chunkedD := sha256Digest(chunked)
	loc := c.startUpload(t, repo)
	resp = c.do(t, http.MethodPatch, loc, http.Header{"Content-Type": {"application/octet-stream"}}, chunked[:pushSize])
	if resp.status != http.StatusAccepted {
		t.Fatalf("first PATCH = %d %s, want 202", resp.status, resp.body)
	}
	loc = c.location(t, resp)
	patchBody := newGatedReader(chunked[pushSize:], halfSent)
	patchDone := sendAsync(c, http.MethodPatch, loc, patchBody)

	// (c) monolithic push: POST ?digest= with its body half sent.
	mono := seededBytes(7103, 2*pushSize)
	monoD := sha256Digest(mono)
	monoBody := newGatedReader(mono, halfSent)
	monoDone := sendAsync(c, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+monoD, monoBody)

	waitCond(t, "both push bodies are half sent", func() bool {
		return patchBody.read.Load() >= halfSent && monoBody.read.Load() >= halfSent
	})
	t.Logf("in flight: fill %s of %s from the upstream, PATCH %s of %s, monolithic POST %s of %s",
		mib(px.forwarded.Load()), mib(fillSize), mib(patchBody.read.Load()), mib(pushSize), mib(monoBody.read.Load()), mib(2*pushSize))
	t.Logf("storage tmp while in flight: %v", storageTmpFiles(t, al.storage))

	// A second server on the same storage (a restart overlapping the old
	// process, or two replicas) starts and stops.
	peer := startGCAirlock(t, "http://"+px.addr, al.storage)
	if killed, err := peer.proc.stop(15 * time.Second); killed || err != nil {
		t.Errorf("second airlock on the same storage: killed %t, %v; want a clean exit", killed, err)
	}
	t.Logf("a second airlock serve started and stopped on the same storage; storage tmp %v", storageTmpFiles(t, al.storage))

	for _, args := range [][]string{{}, {"--delete"}} {
		out, code := runGC(t, bin, al.configPath, args...)
		t.Logf("airlock registry gc %s → exit %d:\n%s", strings.Join(args, " "), code, out)
		if code != 0 {
			t.Errorf("airlock registry gc %v exit %d, want 0", args, code)
		}
		if slices.Contains(args, "--delete") && !strings.HasPrefix(out, "deleted 0 blobs") {
			t.Errorf("gc --delete while pushes were in flight: %q, want \"deleted 0 blobs …\" (everything was younger than the grace period)", firstLine(out))
		}
	}
	if n := px.forwarded.Load(); n >= fillSize {
		t.Fatalf("the fill had finished (%s) before the GC ended: nothing was in flight; slow the upstream link", mib(n))
	}
	if patchBody.read.Load() > halfSent || monoBody.read.Load() > halfSent {
		t.Fatalf("a push body went past its gate before the GC ended")
	}
	t.Logf("after gc: fill %s of %s fetched; storage tmp %v", mib(px.forwarded.Load()), mib(fillSize), storageTmpFiles(t, al.storage))

	// A client joins the fill that the GC ran through.
	joined := make(chan streamResult, 1)
	go func() { joined <- streamGET(c, cachePath+"/blobs/"+fillD, start) }()
	waitCond(t, "the joining client has its first byte or an answer", func() bool {
		return len(joined) > 0 || px.forwarded.Load() >= fillSize || fillJoined(al)
	})

	// Let everything finish.
	px.rate.Store(0)
	patchBody.open()
	monoBody.open()

	for name, ch := range map[string]chan streamResult{"first": first, "joined": joined} {
		r := <-ch
		t.Logf("fill client %s: status %d, %s, %v", name, r.status, mib(r.n), r.err)
		if r.status != http.StatusOK || r.err != nil || r.digest != fillD {
			t.Errorf("fill client %s: status %d, %s hashing to %s, err %v; want 200 with %s", name, r.status, mib(r.n), r.digest, r.err, fillD)
		}
	}
	if r := <-patchDone; r.err != nil || r.status != http.StatusAccepted {
		t.Errorf("in-flight PATCH = %d %s, %v; want 202", r.status, r.body, r.err)
	} else if fin := c.do(t, http.MethodPut, withQuery(c.location(t, &response{status: r.status, header: r.header}), "digest", chunkedD), nil, nil); fin.status != http.StatusCreated {
		t.Errorf("PUT ?digest= finishing the chunked push = %d %s, want 201", fin.status, fin.body)
	}
	if r := <-monoDone; r.err != nil || r.status != http.StatusCreated {
		t.Errorf("monolithic POST ?digest= = %d %s, %v; want 201", r.status, r.body, r.err)
	}

	// The fill is committed, was fetched once, and is now served warm.
	if !eventuallyStored(t, al.storage, fillD) {
		t.Errorf("blob %s not stored after the fill", fillD)
	}
	if got := getDigest(t, c, cachePath+"/blobs/"+fillD); got != fillD {
		t.Errorf("warm GET hashes to %s, want %s", got, fillD)
	}
	if n := up.waitBlobGETs(t, []string{fillD})[fillD]; n != 1 {
		t.Errorf("upstream GETs of the filled blob = %d, want 1 (a second one means the fill was lost)", n)
	}

	// A manifest referencing the pushed blobs is accepted and pulls back.
	m := manifestJSON(t, descriptor{MediaType: mtConfig, Digest: cfgD, Size: int64(len(cfg))}, []descriptor{
		{MediaType: mtLayer, Digest: chunkedD, Size: int64(len(chunked))},
		{MediaType: mtLayer, Digest: monoD, Size: int64(len(mono))},
	}, nil)
	resp = c.do(t, http.MethodPut, "/v2/"+repo+"/manifests/v1", http.Header{"Content-Type": {mtManifest}}, m)
	if resp.status != http.StatusCreated {
		t.Errorf("PUT manifest referencing the pushed blobs = %d %s, want 201", resp.status, resp.body)
	}
	mD := sha256Digest(m)
	for _, d := range []string{cfgD, chunkedD, monoD} {
		resp := c.do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+d, nil, nil)
		if resp.status != http.StatusOK || sha256Digest(resp.body) != d {
			t.Errorf("GET blob %s = %d (%s), want 200 with its content", shortDigest(d), resp.status, sha256Digest(resp.body))
		}
	}
	if resp := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/v1", http.Header{"Accept": {mtManifest}}, nil); resp.status != http.StatusOK || !bytes.Equal(resp.body, m) {
		t.Errorf("GET manifest v1 = %d, want 200 with the pushed bytes", resp.status)
	}

	// A later GC with no grace removes exactly what nothing references.
	out, code := runGC(t, bin, al.configPath, "--delete", "--grace", "0s", "-v")
	t.Logf("airlock registry gc --delete --grace 0s -v → exit %d:\n%s", code, out)
	if code != 0 || !strings.Contains(out, "blob "+orphanD) || !strings.Contains(out, "deleted 1 blobs") {
		t.Errorf("final gc: exit %d, %q; want exit 0 and exactly the orphan %s deleted", code, firstLine(out), shortDigest(orphanD))
	}
	want := []string{fillD, upManifestD, cfgD, chunkedD, monoD, mD}
	sort.Strings(want)
	var got []string
	for d := range storedBlobs(t, al.storage) {
		got = append(got, d)
	}
	sort.Strings(got)
	t.Logf("blob files after the final gc: %d (want %d: the filled layer, the cached manifest, config, chunked and monolithic layers, the pushed manifest)", len(got), len(want))
	if !slices.Equal(got, want) {
		t.Errorf("blob files after the final gc = %v, want %v", got, want)
	}
	if left := storageTmpFiles(t, al.storage); len(left) != 0 {
		t.Errorf("storage tmp after everything finished = %v, want no file", left)
	}
	if ups := dirNames(t, filepath.Join(al.storage, "uploads")); len(ups) != 0 {
		t.Errorf("storage uploads after everything finished = %v, want none", ups)
	}
	for _, d := range []string{cfgD, chunkedD, monoD} {
		if got := getDigest(t, c, "/v2/"+repo+"/blobs/"+d); got != d {
			t.Errorf("GET %s after the final gc hashes to %s", shortDigest(d), got)
		}
	}
	if got := getDigest(t, c, cachePath+"/blobs/"+fillD); got != fillD {
		t.Errorf("GET of the cached layer after the final gc hashes to %s", got)
	}
}

// startGCAirlock runs `airlock serve` as a pull-through cache of
// mcr.microsoft.com (startCacheAirlock's config) that also takes pushes
// from user ci; on storage when not empty, else on a fresh directory.
func startGCAirlock(t testing.TB, upstream, storage string) *registry {
	t.Helper()
	bin := needAirlock(t)
	r := newRegistry(t, kindAirlock, regOptions{anonymousPull: true, users: map[string]string{"ci": "ci-e2e-password"}})
	if storage != "" {
		r.storage = storage
	}
	r.adminAddr = porttest.FreeAddr(t)
	r.bin = bin
	r.writeCacheConfig(cacheOptions{upstream: upstream})
	users := fmt.Sprintf("  users:\n    - { name: ci, passwordHash: %q }\n", bcryptHash(t, r.password))
	f, err := os.OpenFile(r.configPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(users); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r.args = []string{"serve", "--config", r.configPath}
	r.start()
	return r
}

// runGC runs `airlock registry gc --config cfg args…` to completion and
// returns its combined output and exit code.
func runGC(t testing.TB, bin, cfg string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"registry", "gc", "--config", cfg}, args...)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("airlock registry gc %v did not finish within 2 minutes:\n%s", args, out)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("airlock registry gc %v: %v", args, err)
	}
	return string(out), code
}

// gatedReader hands out b, but only the first gateAt bytes until open is
// called: a request body that stalls half way, for as long as the test
// wants.
type gatedReader struct {
	b      []byte
	off    int
	gateAt int
	gate   chan struct{}
	read   atomic.Int64
}

func newGatedReader(b []byte, gateAt int) *gatedReader {
	return &gatedReader{b: b, gateAt: gateAt, gate: make(chan struct{})}
}

func (g *gatedReader) open() { close(g.gate) }

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.off >= len(g.b) {
		return 0, io.EOF
	}
	end := len(g.b)
	if g.off >= g.gateAt {
		<-g.gate
	} else {
		end = g.gateAt
	}
	n := copy(p, g.b[g.off:end])
	g.off += n
	g.read.Add(int64(n))
	return n, nil
}

// sendAsync sends method target with body (its length known) in the
// background; the response arrives on the channel.
func sendAsync(c *ociClient, method, target string, body *gatedReader) chan asyncResult {
	done := make(chan asyncResult, 1)
	req, err := http.NewRequest(method, c.r.url(""), body)
	if err != nil {
		done <- asyncResult{err: err}
		return done
	}
	if strings.HasPrefix(target, "/") {
		p, q, _ := strings.Cut(target, "?")
		req.URL.Opaque, req.URL.RawQuery = p, q
	} else if req.URL, err = req.URL.Parse(target); err != nil {
		done <- asyncResult{err: err}
		return done
	}
	req.ContentLength = int64(len(body.b))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.SetBasicAuth(c.user, c.pass)
	go func() {
		resp, err := c.hc.Do(req)
		if err != nil {
			done <- asyncResult{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- asyncResult{status: resp.StatusCode, header: resp.Header, body: b, err: err}
	}()
	return done
}

type asyncResult struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// fillJoined reports whether airlock counted a coalesced blob waiter (the
// joining client attached to the fill in progress).
func fillJoined(r *registry) bool {
	resp, err := http.Get("http://" + r.adminAddr + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	v, _ := metricSample(string(b), "airlock_cache_coalesced_waiters_total", `kind="blob"`)
	return v > 0
}

// waitCond polls cond every 10 ms for up to a minute.
func waitCond(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dirNames lists the entries of dir (none when it does not exist).
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
