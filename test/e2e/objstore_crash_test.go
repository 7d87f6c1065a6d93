//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/testkit/objstoretest"
)

// objUploadTTL is registry.uploadTTL of the crash tests: short, so that
// `airlock registry gc` (which aborts unfinished writes older than the
// upload TTL) counts the writes a kill -9 left behind as stale a moment
// later.
const objUploadTTL = time.Second

// TestObjStoreCrashDuringPush: on object storage (E2E_STORAGE), kill -9
// of airlock in the middle of a 64 MiB blob push (a chunked PATCH stream,
// then a monolithic PUT ?digest=), a restart on the same container or
// bucket, and then: the blob is not visible (HEAD 404), every object
// under blobs/ hashes to its name, the push retried succeeds, and
// `airlock registry gc --delete --grace 0s` plus the idle-upload purge
// leave nothing behind: no upload objects, no blob nothing references
// and, on S3, no unfinished multipart upload.
func TestObjStoreCrashDuringPush(t *testing.T) {
	b := needObjectStorage(t)
	const (
		size     = 64 << 20
		seed     = 4096
		killAt   = 24 << 20 // bytes handed to the connection before kill -9
		repo     = "e2e/objcrash"
		blobPath = "/v2/" + repo + "/blobs/"
	)
	r := startAirlock(t, regOptions{anonymousPull: true, users: map[string]string{"ci": "ci-e2e-password"}, uploadTTL: objUploadTTL})
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
			t.Logf("%s: staged writes after the kill: %s", b.name, r.unfinishedWrites(t))

			r.start()
			if resp := c.do(t, http.MethodHead, blobPath+big, nil, nil); resp.status != http.StatusNotFound {
				t.Errorf("HEAD %s after crash and restart = %d, want 404", big, resp.status)
			}
			resp := c.do(t, http.MethodGet, blobPath+big, nil, nil)
			checkOCIError(t, "GET of the crashed blob", resp, []int{http.StatusNotFound}, []string{"BLOB_UNKNOWN"})
			stored := r.storedBlobs(t) // every object under blobs/ hashes to its name
			if _, ok := stored[small]; !ok {
				t.Errorf("%s holds no blob object for the blob pushed before the crash (%s)", r.storageURL, small)
			}
			if name, ok := stored[big]; ok {
				t.Errorf("%s holds %s, the crashed blob", r.storageURL, name)
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
			t.Errorf("%s has no blob object for %s after the retry", r.storageURL, big)
		}
	})

	t.Run("gc and the upload purge reclaim the leftovers", func(t *testing.T) {
		r.checkReclaimed(t, b, nil)
	})
}

// TestObjStoreCrashDuringFill: on object storage (E2E_STORAGE), kill -9
// of a pull-through cache while it streams a 32 MiB upstream blob into
// the store (the upstream slowed to 8 MiB/s). After the restart the blob
// is not stored and every object under blobs/ hashes to its name; a new
// pull fills it (a second upstream GET) and stores it; then `airlock
// registry gc --delete --grace 0s` leaves no unfinished write and no
// object nothing references.
func TestObjStoreCrashDuringFill(t *testing.T) {
	skipUnlessAirlock(t)
	b := needObjectStorage(t)
	const (
		size = 32 << 20
		rate = 8 << 20 // bytes/s
		repo = "aks/objcrash-fill"
	)
	up := startUpstream(t)
	d := seedBigBlob(t, up, repo, 3201, size)
	px := startThrottleProxy(t, up.addr, rate)
	al := startCacheAirlock(t, cacheOptions{upstream: "http://" + px.addr, uploadTTL: objUploadTTL})
	c := newOCIClient(al)
	path := "/v2/" + cacheTarget + "/" + repo + "/blobs/" + d

	client := make(chan streamResult, 1)
	go func() { client <- streamGET(c, path, time.Now()) }()
	deadline := time.Now().Add(time.Minute)
	for px.forwarded.Load() < size*3/8 {
		if time.Now().After(deadline) {
			t.Fatalf("only %s of %s came from the upstream after a minute", mib(px.forwarded.Load()), mib(size))
		}
		time.Sleep(10 * time.Millisecond)
	}
	al.kill()
	res := <-client
	t.Logf("kill -9 of airlock after %s of %s came from the upstream; the client had %s: %v",
		mib(px.forwarded.Load()), mib(size), mib(res.n), res.err)
	if res.err == nil && res.digest == d {
		t.Fatalf("the client got the whole blob before the kill: nothing was mid-fill")
	}
	t.Logf("%s: staged writes after the kill: %s; scratch files: %v", b.name, al.unfinishedWrites(t), al.tmpFiles(t))
	if _, ok := al.storedBlobs(t)[d]; ok {
		t.Fatalf("blob %s is stored under its digest after kill -9 mid-fill", d)
	}

	px.rate.Store(0) // the rest needs no slow link
	al.start()
	if _, ok := al.storedBlobs(t)[d]; ok {
		t.Errorf("after the restart, blob %s is stored before any new fill", d)
	}
	if got := getDigest(t, c, path); got != d {
		t.Errorf("GET after the restart hashes to %s, want %s", got, d)
	}
	if n := up.waitBlobGETs(t, []string{d})[d]; n != 2 {
		t.Errorf("upstream GETs of %s = %d, want 2 (the killed fill and the new one)", d, n)
	}
	if !al.eventuallyStored(t, d) {
		t.Fatalf("blob %s not stored after the new fill", d)
	}
	// The cache links the blob but no manifest references it, so gc with
	// no grace deletes it as well.
	al.checkReclaimed(t, b, nil)
}

// checkReclaimed runs `airlock registry gc --delete --grace 0s` on r
// (whose uploadTTL is objUploadTTL) once the unfinished writes are older
// than that, then the idle-upload purge airlock runs every
// registry.PurgeInterval (here from the test, on the same storage, with
// the same TTL), and checks what is left: objects under blobs/ only for
// the digests in keep, each hashing to its name; nothing under uploads/;
// on S3 no unfinished multipart upload.
func (r *registry) checkReclaimed(t *testing.T, b *objBackend, keep []string) {
	t.Helper()
	time.Sleep(objUploadTTL + time.Second)
	before := r.objectNames(t, "")
	out := r.runGC(t)
	t.Logf("airlock registry gc --delete --grace 0s: %s", strings.TrimSpace(out))
	t.Logf("staged writes after gc: %s", r.unfinishedWrites(t))
	if b.name == storageS3 {
		if ups := r.multipartUploads(t); len(ups) != 0 {
			t.Errorf("after airlock registry gc --delete --grace 0s (registry.uploadTTL %s), %s has %d unfinished multipart uploads: %v; want none (gc aborts those older than the upload TTL)",
				objUploadTTL, r.storageURL, len(ups), ups)
		}
	}
	if ups := r.objectNames(t, "uploads"); len(ups) > 0 {
		t.Logf("upload objects after gc (gc leaves upload sessions to the purge): %v", ups)
	}
	bs := objstoretest.Store(t, r.storageURL, blobstore.Options{UploadTTL: objUploadTTL})
	if b.name == storageS3 {
		// The same GC in process, with the store's upload TTL set as in
		// the config: shows whether the storage side reclaims them.
		if _, err := bs.GC(context.Background(), false, 0); err != nil {
			t.Errorf("GC of a store with UploadTTL %s: %v", objUploadTTL, err)
		}
		if ups := r.multipartUploads(t); len(ups) != 0 {
			t.Errorf("after blobstore GC with UploadTTL %s, %d unfinished multipart uploads remain: %v", objUploadTTL, len(ups), ups)
		}
	}
	n, err := bs.PurgeUploads()
	if err != nil {
		t.Errorf("PurgeUploads on %s: %v", r.storageURL, err)
	}
	t.Logf("PurgeUploads (uploadTTL %s) removed %d uploads", objUploadTTL, n)
	if ups := r.objectNames(t, "uploads"); len(ups) > 0 {
		t.Errorf("objects under uploads/ after gc and the upload purge: %v; want none", ups)
	}
	for d, name := range r.storedBlobs(t) {
		if !slices.Contains(keep, d) {
			t.Errorf("after gc --delete --grace 0s, %s still holds %s (%s), which nothing references", r.storageURL, name, d)
		}
	}
	after := r.objectNames(t, "")
	t.Logf("objects before gc: %d, after gc and purge: %d %v", len(before), len(after), after)
}

// unfinishedWrites describes writes staged on r's storage but visible
// under no name: on S3 the multipart uploads in progress; Azure's
// uncommitted blocks are listed by no API airlock uses (they expire after
// 7 days).
func (r *registry) unfinishedWrites(t testing.TB) string {
	t.Helper()
	if !strings.HasPrefix(r.storageURL, "s3://") {
		return "(azure: uncommitted blocks are not listed)"
	}
	ups := r.multipartUploads(t)
	return fmt.Sprintf("%d multipart uploads %v", len(ups), ups)
}

// multipartUploads lists the keys of the unfinished multipart uploads in
// r's bucket, through the gateway's own S3 client.
func (r *registry) multipartUploads(t testing.TB) []string {
	t.Helper()
	b := objectBackend(t)
	if b == nil || b.gw == nil {
		t.Fatalf("multipartUploads: %s is not on the test's versitygw", r.storageURL)
	}
	bucket := strings.TrimPrefix(r.storageURL, "s3://")
	bucket, _, _ = strings.Cut(bucket, "?")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys []string
	in := &s3.ListMultipartUploadsInput{Bucket: &bucket}
	for {
		page, err := b.gw.Client().ListMultipartUploads(ctx, in)
		if err != nil {
			t.Fatalf("ListMultipartUploads %s: %v", bucket, err)
		}
		for _, u := range page.Uploads {
			keys = append(keys, *u.Key)
		}
		if page.IsTruncated == nil || !*page.IsTruncated {
			return keys
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}
