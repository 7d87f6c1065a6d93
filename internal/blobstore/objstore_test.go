package blobstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/testkit/objstoretest"
)

// Two Stores on one container or bucket are two replicas: an upload
// started through one continues and commits through the other, and what
// one writes the other reads.
func TestReplicasShareObjectStorage(t *testing.T) {
	for _, b := range objstoretest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			u := b.URL(t)
			a := objstoretest.Store(t, u, blobstore.Options{})
			c := objstoretest.Store(t, u, blobstore.Options{})
			data := bytes.Repeat([]byte("replica "), 3<<17) // 3 MiB
			d := oci.SHA256.FromBytes(data)

			up, err := a.NewUpload()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := up.Append(0, bytes.NewReader(data[:1<<20]), -1); err != nil {
				t.Fatal(err)
			}
			up2, err := c.Upload(up.ID())
			if err != nil {
				t.Fatalf("Upload(%s) through the other replica = %v", up.ID(), err)
			}
			if up2.Size() != 1<<20 {
				t.Fatalf("size through the other replica = %d, want %d", up2.Size(), 1<<20)
			}
			if _, err := up2.Append(1<<20, bytes.NewReader(data[1<<20:]), -1); err != nil {
				t.Fatal(err)
			}
			if _, err := up2.Commit("team/app", d); err != nil {
				t.Fatalf("Commit through the other replica = %v", err)
			}
			if _, err := up.Append(1<<20, bytes.NewReader(data), -1); !errors.Is(err, blobstore.ErrUploadUnknown) {
				t.Errorf("Append through the first replica after the commit = %v, want ErrUploadUnknown", err)
			}
			size, err := a.BlobLinked("team/app", d)
			if err != nil || size != int64(len(data)) {
				t.Fatalf("BlobLinked through the first replica = %d, %v", size, err)
			}
			r, _, err := a.Open(d)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("blob read through the first replica differs (%d bytes, %v)", len(got), err)
			}

			// A tag written by both at once is one of the two, whole.
			var wg sync.WaitGroup
			recs := map[oci.Digest]bool{}
			for i, s := range []*blobstore.Store{a, c} {
				body := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[],"annotations":{"n":"%d"}}`,
					oci.MediaTypeImageManifest, d, len(data), i)
				rec := blobstore.ManifestRecord{Digest: oci.SHA256.FromBytes(body), MediaType: oci.MediaTypeImageManifest, Body: body}
				recs[rec.Digest] = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := s.PutManifest("team/app", rec, "latest"); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			for _, s := range []*blobstore.Store{a, c} {
				m, err := s.GetManifest("team/app", "latest")
				if err != nil || !recs[m.Digest] || oci.SHA256.FromBytes(m.Body) != m.Digest {
					t.Fatalf("tag after concurrent pushes = %s, %v; want one of the two manifests, intact", m.Digest, err)
				}
			}
		})
	}
}

// GC on object storage keeps what manifests reference and what was
// written within the grace period (by the storage's own object times),
// even while pushes run, and deletes the rest.
func TestObjectStorageGC(t *testing.T) {
	for _, b := range objstoretest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := objstoretest.Store(t, b.URL(t), blobstore.Options{})
			put := func(repo string, data []byte) oci.Digest {
				d := oci.SHA256.FromBytes(data)
				if _, err := s.Put(d, bytes.NewReader(data), -1); err != nil {
					t.Fatal(err)
				}
				if err := s.LinkBlob(repo, d); err != nil {
					t.Fatal(err)
				}
				return d
			}
			layer := put("app", []byte("referenced layer"))
			cfg := put("app", []byte(`{}`))
			orphan := put("app", []byte("pushed, never referenced"))
			body := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":16}]}`,
				oci.MediaTypeImageManifest, cfg, layer)
			if err := s.PutManifest("app", blobstore.ManifestRecord{Digest: oci.SHA256.FromBytes(body), MediaType: oci.MediaTypeImageManifest, Body: body}, "v1"); err != nil {
				t.Fatal(err)
			}

			// With a grace period, GC during pushes deletes nothing of them.
			stop := make(chan struct{})
			var pushed []oci.Digest
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					pushed = append(pushed, put("busy", fmt.Appendf(nil, "push %d", i)))
				}
			}()
			for range 3 {
				if _, err := s.GC(context.Background(), false, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			close(stop)
			wg.Wait()
			for _, d := range append(pushed, orphan) {
				if _, err := s.BlobLinked(map[bool]string{true: "app", false: "busy"}[d == orphan], d); err != nil {
					t.Fatalf("blob %s pushed within the grace period is gone after GC: %v", d, err)
				}
			}

			// Without one, the unreferenced links and blobs go.
			rep, err := s.GC(context.Background(), false, 0)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Links != len(pushed)+1 || len(rep.Blobs) != len(pushed)+1 {
				t.Errorf("GC(grace 0) removed %d links and %d blobs, want %d of each", rep.Links, len(rep.Blobs), len(pushed)+1)
			}
			if _, err := s.Stat(orphan); !errors.Is(err, blobstore.ErrBlobUnknown) {
				t.Errorf("Stat(orphan) after GC = %v, want ErrBlobUnknown", err)
			}
			for _, d := range []oci.Digest{layer, cfg} {
				if _, err := s.BlobLinked("app", d); err != nil {
					t.Errorf("referenced blob %s after GC: %v", d, err)
				}
			}
			if m, err := s.GetManifest("app", "v1"); err != nil || oci.SHA256.FromBytes(m.Body) != m.Digest {
				t.Errorf("manifest after GC: %v", err)
			}
		})
	}
}

// A write cut off before Commit (a crash) leaves nothing visible, and
// storage requests are counted: a small blob is one PUT.
func TestObjectStorageSmallBlobOneRequest(t *testing.T) {
	for _, b := range objstoretest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			var mu sync.Mutex
			var ops []string
			obs := func(op, result string, _, _ int64, _ time.Duration) {
				mu.Lock()
				ops = append(ops, op+":"+result)
				mu.Unlock()
			}
			drv := objstoretest.Driver(t, b.URL(t), storage.Observer(obs))
			s, err := blobstore.OpenDriver(drv, blobstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			data := []byte("a small blob: one request to store it")
			d := oci.SHA256.FromBytes(data)
			w, err := s.NewWriter(d)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(data)
			mu.Lock()
			ops = nil
			mu.Unlock()
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			got := append([]string(nil), ops...)
			mu.Unlock()
			if len(got) != 1 {
				t.Errorf("storage requests to commit a %d-byte blob = %q, want exactly one PUT", len(data), got)
			}

			// A writer never committed leaves nothing visible.
			big := bytes.Repeat([]byte{7}, 20<<20)
			w2, err := s.NewWriter(oci.SHA256.FromBytes(big))
			if err != nil {
				t.Fatal(err)
			}
			w2.Write(big)
			if _, err := s.Stat(oci.SHA256.FromBytes(big)); !errors.Is(err, blobstore.ErrBlobUnknown) {
				t.Errorf("Stat of a blob whose writer has not committed = %v, want ErrBlobUnknown", err)
			}
			w2.Abort()
		})
	}
}

// With a local cache, a hot blob is read from this replica's disk: after
// the first read (which fetches a verified copy in the background) a GET
// asks the storage nothing; a cache fill's blob is local at once; the
// least recently used copy goes when the cache is full.
func TestLocalBlobCache(t *testing.T) {
	b := objstoretest.Backends(t)[0]
	var mu sync.Mutex
	gets := 0
	obs := func(op, _ string, _, _ int64, _ time.Duration) {
		if op == "GetBlob" || op == "GetObject" {
			mu.Lock()
			gets++
			mu.Unlock()
		}
	}
	drv := objstoretest.Driver(t, b.URL(t), storage.Observer(obs))
	s, err := blobstore.OpenDriver(drv, blobstore.Options{Scratch: t.TempDir(), LocalCacheMaxBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	read := func(d oci.Digest) (isFile bool) {
		r, _, err := s.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got, err := io.ReadAll(r)
		if err != nil || oci.SHA256.FromBytes(got) != d {
			t.Fatalf("read %s: %v (%d bytes, digest differs)", d, err, len(got))
		}
		_, isFile = r.(interface{ Fd() uintptr })
		return isFile
	}
	pushed := bytes.Repeat([]byte("pushed "), 200_000) // 1.4 MB
	d := oci.SHA256.FromBytes(pushed)
	if _, err := s.Put(d, bytes.NewReader(pushed), -1); err != nil {
		t.Fatal(err)
	}
	if read(d) {
		t.Fatal("first read of a pushed blob came from a local copy; want the storage")
	}
	deadline := time.Now().Add(30 * time.Second)
	for !read(d) {
		if time.Now().After(deadline) {
			t.Fatal("no local copy 30 s after the first read")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	before := gets
	mu.Unlock()
	for range 10 {
		if !read(d) {
			t.Fatal("a read after the copy arrived went to the storage")
		}
	}
	mu.Lock()
	if gets != before {
		t.Errorf("10 warm reads sent %d GETs to the storage, want 0", gets-before)
	}
	mu.Unlock()

	// A fill is local as soon as it commits.
	filled := bytes.Repeat([]byte("filled "), 200_000)
	fd := oci.SHA256.FromBytes(filled)
	w, err := s.NewWriter(fd)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(filled)
	if err := w.Commit("cache/app"); err != nil {
		t.Fatal(err)
	}
	if !read(fd) {
		t.Error("a committed fill was not read from its local copy")
	}

	// 8 MiB of cache, blobs of at most 2 MiB: filling it evicts the oldest.
	for i := range 6 {
		big := bytes.Repeat([]byte{byte(i)}, 1900_000)
		bd := oci.SHA256.FromBytes(big)
		w, _ := s.NewWriter(bd)
		w.Write(big)
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if read(d) {
		t.Error("the least recently used copy survived a full cache")
	}
}
