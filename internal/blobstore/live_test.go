package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

// Two Stores opened on one root stand for two processes (a server and
// `airlock registry gc`, or a server and its restarted successor): they
// share nothing in memory, only the files (and the locks on them).

// halfReader yields the first half of b, then blocks until release is
// closed, then yields the rest: a request body stalled in the middle.
type halfReader struct {
	b       []byte
	off     int
	half    chan struct{} // closed once the first half was handed out
	release chan struct{}
}

func newHalfReader(b []byte) *halfReader {
	return &halfReader{b: b, half: make(chan struct{}), release: make(chan struct{})}
}

func (h *halfReader) Read(p []byte) (int, error) {
	mid := len(h.b) / 2
	if h.off >= len(h.b) {
		return 0, io.EOF
	}
	end := len(h.b)
	if h.off < mid {
		end = mid
	} else {
		select {
		case <-h.half:
		default:
			close(h.half)
		}
		<-h.release
	}
	n := copy(p, h.b[h.off:end])
	h.off += n
	return n, nil
}

// TestPeerOpenAndGCLeaveLiveWritesAlone: while store A has a cache fill
// (Writer), a monolithic Put and a chunked upload's Append half done, store
// B opens the same root, runs GC (dry run, then delete with the default
// grace) and purges uploads. All three of A's writes then complete, and
// nothing A wrote is lost.
func TestPeerOpenAndGCLeaveLiveWritesAlone(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	a := openStore(t, root, Options{})

	fill := randBytes(61, 300<<10)
	fillD := oci.SHA256.FromBytes(fill)
	w, err := a.NewWriter(fillD)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(fill[:len(fill)/2]); err != nil {
		t.Fatal(err)
	}

	mono := randBytes(62, 300<<10)
	monoD := oci.SHA256.FromBytes(mono)
	monoBody := newHalfReader(mono)
	putDone := make(chan error, 1)
	go func() {
		_, err := a.Put(monoD, monoBody, -1)
		if err == nil {
			err = a.LinkBlob("app", monoD)
		}
		putDone <- err
	}()

	chunk := randBytes(63, 300<<10)
	chunkD := oci.SHA256.FromBytes(chunk)
	u, err := a.NewUpload()
	if err != nil {
		t.Fatal(err)
	}
	appendBody := newHalfReader(chunk)
	appendDone := make(chan error, 1)
	go func() {
		_, err := u.Append(0, appendBody, -1)
		appendDone <- err
	}()
	<-monoBody.half
	<-appendBody.half

	// Store B: another process on the same root.
	b := openStore(t, root, Options{})
	for _, dry := range []bool{true, false} {
		rep, err := b.GC(context.Background(), dry, time.Hour)
		if err != nil {
			t.Fatalf("B.GC(dry %t) = %v", dry, err)
		}
		if len(rep.Blobs) != 0 || rep.Links != 0 {
			t.Errorf("B.GC(dry %t) removes %v and %d links, want nothing", dry, rep.Blobs, rep.Links)
		}
	}
	if n, err := b.PurgeUploads(); err != nil || n != 0 {
		t.Errorf("B.PurgeUploads() = %d, %v; want 0, nil", n, err)
	}

	// A finishes all three.
	if _, err := w.Write(fill[len(fill)/2:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit("cache/app"); err != nil {
		t.Errorf("fill Commit after B opened the root = %v", err)
	}
	close(monoBody.release)
	if err := <-putDone; err != nil {
		t.Errorf("monolithic Put after B opened the root = %v", err)
	}
	close(appendBody.release)
	if err := <-appendDone; err != nil {
		t.Errorf("Append after B opened the root = %v", err)
	} else if _, err := u.Commit("app", chunkD); err != nil {
		t.Errorf("upload Commit after B opened the root = %v", err)
	}
	for _, want := range [][]byte{fill, mono, chunk} {
		d := oci.SHA256.FromBytes(want)
		if _, err := b.Stat(d); err != nil {
			t.Errorf("B.Stat(%s) = %v, want the blob A wrote", d, err)
			continue
		}
		if got := readBlob(t, b, d); !bytes.Equal(got, want) {
			t.Errorf("blob %s read back differs", d)
		}
	}
}

// TestGCInPeerSeesReferenceCreatedMeanwhile: store B plans a GC in which an
// old, unreferenced blob and its link are to go; before B applies the plan,
// store A pushes a manifest that references the blob. B must notice (the
// write happened in another Store: no shared memory) and keep both.
func TestGCInPeerSeesReferenceCreatedMeanwhile(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	clk := newFakeClock()
	a := openStore(t, root, Options{Now: clk.Now})
	layer := randBytes(64, 999)
	layerD := putBlob(t, a, "app", oci.SHA256, layer)
	cfgD := putBlob(t, a, "app", oci.SHA256, []byte("{}"))
	clk.Advance(2 * time.Hour)

	b := openStore(t, root, Options{Now: clk.Now})
	pushed := false
	b.testHookPlanned = func(attempt int) {
		if attempt != 1 {
			return
		}
		body := imageManifest(t, desc("application/vnd.oci.image.config.v1+json", cfgD, 2), []oci.Descriptor{desc("application/vnd.oci.image.layer.v1.tar", layerD, len(layer))}, nil)
		rec := ManifestRecord{Digest: oci.SHA256.FromBytes(body), MediaType: oci.MediaTypeImageManifest, Body: body}
		if err := a.PutManifest("app", rec, "v1"); err != nil {
			t.Errorf("A.PutManifest during B's GC = %v", err)
		}
		pushed = true
	}
	rep, err := b.GC(context.Background(), false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !pushed {
		t.Fatal("the hook did not run: GC never planned without the lock")
	}
	if len(rep.Blobs) != 0 || rep.Links != 0 {
		t.Errorf("B.GC removed blobs %v and links %v; want nothing (A referenced them after B planned)", rep.Blobs, rep.RemovedLinks)
	}
	if rep.Attempts < 2 {
		t.Errorf("B.GC attempts = %d, want ≥ 2 (the plan went stale)", rep.Attempts)
	}
	for _, d := range []oci.Digest{layerD, cfgD} {
		if _, err := a.BlobLinked("app", d); err != nil {
			t.Errorf("A.BlobLinked(app, %s) after B's GC = %v", d, err)
		}
	}
}

// A process (B) whose clock says an upload has been idle past the TTL
// purges it while another process (A) is in the middle of an Append to it.
// There is no lock across processes (replicas may share only object
// storage), so B may remove it; what must hold is that A's Commit then
// either fails or stores exactly the bytes appended — never a wrong blob.
func TestPeerPurgeDuringAppendNeverCorrupts(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	a := openStore(t, root, Options{})
	data := randBytes(65, 256<<10)
	d := oci.SHA256.FromBytes(data)
	u, err := a.NewUpload()
	if err != nil {
		t.Fatal(err)
	}
	body := newHalfReader(data)
	done := make(chan error, 1)
	go func() {
		_, err := u.Append(0, body, -1)
		done <- err
	}()
	<-body.half

	later := func() time.Time { return time.Now().Add(48 * time.Hour) }
	b := openStore(t, root, Options{Now: later, UploadTTL: time.Hour})
	if n, err := b.PurgeUploads(); err != nil || n != 1 {
		t.Errorf("B.PurgeUploads() of an upload idle past the TTL = %d, %v; want 1, nil", n, err)
	}

	close(body.release)
	<-done
	if _, err := u.Commit("app", d); err != nil {
		if _, serr := a.Stat(d); !errors.Is(serr, ErrBlobUnknown) {
			t.Fatalf("Commit failed (%v) yet blob %s exists: %v", err, d, serr)
		}
		return
	}
	if got := readBlob(t, a, d); !bytes.Equal(got, data) {
		t.Fatal("committed blob differs from the bytes appended")
	}
}
