package blobstore

import (
	"fmt"
	"io"
	"os"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// Writer streams one blob of known digest into the storage while other
// goroutines may read what has been written so far from a local file (the
// pull-through cache serves clients from it during a fill): on a file
// system that file is the driver's own temp file; on object storage the
// bytes also go to a spool file in the store's scratch directory. Nothing
// is visible in the store until Commit has verified the digest and
// committed the object; a crash before that leaves only a temp file (which
// Open removes) and, on object storage, staged blocks or an unfinished
// multipart upload that are visible under no name (doc.go says who
// reclaims them).
//
// A Writer is used by one goroutine (HashElsewhere may move its hashing to
// a second one); Path may be opened by any number of readers, who must
// learn from the writer's owner how far the file is valid and whether it
// was committed.
type Writer struct {
	s     *Store
	d     oci.Digest
	obj   storage.ObjectWriter
	spool *os.File // object storage only
	path  string
	out   io.Writer
	v     *oci.Verifier
	n     int64
	done  bool
	ext   bool // HashElsewhere: the caller hashes, Write does not
}

// NewWriter starts a blob write for d.
func (s *Store) NewWriter(d oci.Digest) (*Writer, error) {
	d, err := checkDigest(d)
	if err != nil {
		return nil, err
	}
	obj, err := s.drv.NewWriter(s.ctx(), blobName(d))
	if err != nil {
		return nil, fmt.Errorf("write blob %s: %w", d, err)
	}
	w := &Writer{s: s, d: d, obj: obj, v: oci.NewVerifier(d)}
	if lw, ok := obj.(localWriter); ok {
		w.path, w.out = lw.LocalPath(), obj
		return w, nil
	}
	spool, err := os.CreateTemp(s.tmp, "fill-*")
	if err != nil {
		obj.Abort()
		return nil, fmt.Errorf("write blob %s: spool: %w", d, err)
	}
	w.spool, w.path, w.out = spool, spool.Name(), io.MultiWriter(spool, obj)
	return w, nil
}

// Write appends p to the object, the spool and the running hash (unless
// HashElsewhere moved the hashing to the caller).
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.out.Write(p)
	if !w.ext {
		w.v.Write(p[:n])
	}
	w.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("write blob %s: %w", w.d, err)
	}
	return n, nil
}

// HashElsewhere stops Write from hashing and returns the running hash: the
// caller writes every byte it writes to w, in the same order, to the
// returned writer, and has done so before it calls Verified or Commit. It
// lets a fill hash in one goroutine while another writes. Calling it again
// returns the same hash.
func (w *Writer) HashElsewhere() io.Writer {
	w.ext = true
	return w.v
}

// Path is the local file readers may open while the blob is written.
func (w *Writer) Path() string { return w.path }

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Verified reports whether the bytes written so far hash to the digest.
func (w *Writer) Verified() bool { return w.v.Verified() }

// Commit verifies the digest (ErrDigestMismatch discards everything),
// commits the object and links the blob into each repo.
func (w *Writer) Commit(repos ...string) error {
	if w.done {
		return fmt.Errorf("write blob %s: already finished", w.d)
	}
	if !w.v.Verified() {
		w.Abort()
		return fmt.Errorf("write blob %s: %w: %d bytes written", w.d, ErrDigestMismatch, w.n)
	}
	w.done = true
	err := w.s.commitBlob(w.obj, w.d, w.n)
	if err == nil && w.spool != nil && w.s.lc != nil {
		w.s.lc.adopt(w.d, w.spool.Name(), w.n) // verified: keep a local copy
	}
	w.dropSpool()
	if err != nil {
		return fmt.Errorf("write blob %s: %w", w.d, err)
	}
	for _, repo := range repos {
		if err := w.s.link(repo, w.d, true); err != nil {
			return err
		}
	}
	return nil
}

// Abort discards what was written. Safe to call after Commit (no-op).
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.obj.Abort()
	w.dropSpool()
}

// dropSpool removes the spool file; readers that opened it keep reading.
func (w *Writer) dropSpool() {
	if w.spool != nil {
		w.spool.Close()
		os.Remove(w.spool.Name())
	}
}
