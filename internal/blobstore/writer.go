package blobstore

import (
	"fmt"
	"os"

	"github.com/airlockdev/airlock/internal/oci"
)

// Writer streams one blob of known digest into a temp file under root/tmp
// while other goroutines may read that file as it grows (the pull-through
// cache serves clients from it during a fill). Nothing is visible in the
// blob tree until Commit has verified the digest, fsynced the file and
// renamed it into place; a crash before that leaves only a temp file, which
// Open removes.
//
// A Writer is used by one goroutine; Path may be opened by any number of
// readers, who must learn from the writer's owner how far the file is valid
// and whether it was committed.
type Writer struct {
	s    *Store
	d    oci.Digest
	f    *os.File
	path string
	v    *oci.Verifier
	n    int64
	done bool
}

// NewWriter starts a blob write for d.
func (s *Store) NewWriter(d oci.Digest) (*Writer, error) {
	d, err := checkDigest(d)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.tmpDir(), "fill-*")
	if err != nil {
		return nil, fmt.Errorf("write blob %s: %w", d, err)
	}
	return &Writer{s: s, d: d, f: f, path: f.Name(), v: oci.NewVerifier(d)}, nil
}

// Write appends p to the temp file and the running hash.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.v.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("write blob %s: %w", w.d, err)
	}
	return n, nil
}

// Path is the temp file readers may open while the blob is written.
func (w *Writer) Path() string { return w.path }

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Verified reports whether the bytes written so far hash to the digest.
func (w *Writer) Verified() bool { return w.v.Verified() }

// Commit verifies the digest (ErrDigestMismatch removes the temp file),
// fsyncs, renames the file into the blob tree and links the blob into each
// repo.
func (w *Writer) Commit(repos ...string) error {
	if w.done {
		return fmt.Errorf("write blob %s: already finished", w.d)
	}
	if !w.v.Verified() {
		w.Abort()
		return fmt.Errorf("write blob %s: %w: %d bytes written", w.d, ErrDigestMismatch, w.n)
	}
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.done = true
	if err == nil {
		w.s.refRLock()
		err = w.s.installBlobLocked(w.path, w.d)
		w.s.refRUnlock()
	}
	if err != nil {
		os.Remove(w.path)
		return fmt.Errorf("write blob %s: %w", w.d, err)
	}
	for _, repo := range repos {
		if err := w.s.LinkBlob(repo, w.d); err != nil {
			return err
		}
	}
	return nil
}

// Abort discards the temp file. Safe to call after Commit (no-op).
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.path)
}
