package blobstore

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// Stat returns the size of blob d, or ErrBlobUnknown.
func (s *Store) Stat(d oci.Digest) (int64, error) {
	d, err := checkDigest(d)
	if err != nil {
		return 0, err
	}
	info, err := s.statObj(blobName(d))
	if err != nil {
		if isNotExist(err) {
			return 0, fmt.Errorf("stat blob %s: %w", d, ErrBlobUnknown)
		}
		return 0, fmt.Errorf("stat blob %s: %w", d, err)
	}
	s.sizes.Store(d, info.Size)
	return info.Size, nil
}

// knownSize is the size of blob d if the store has seen it, else a Stat.
// Content-addressed: a digest's size never changes.
func (s *Store) knownSize(d oci.Digest) (int64, error) {
	if v, ok := s.sizes.Load(d); ok {
		return v.(int64), nil
	}
	return s.Stat(d)
}

// Open opens blob d for reading and returns it with its size; the caller
// closes it (and typically serves it with http.ServeContent). On a file
// system the reader is an *os.File (sendfile), and a blob removed by GC
// while open stays readable through it. On object storage it reads lazily:
// a whole read is one GET, a ranged read one ranged GET, and a blob of
// known size costs no other request; a blob deleted meanwhile fails the
// first Read with ErrBlobUnknown.
func (s *Store) Open(d oci.Digest) (io.ReadSeekCloser, int64, error) {
	d, err := checkDigest(d)
	if err != nil {
		return nil, 0, err
	}
	size, err := s.knownSize(d)
	if err != nil {
		return nil, 0, fmt.Errorf("open blob %s: %w", d, err)
	}
	if s.lc != nil {
		if f := s.lc.open(d); f != nil {
			return f, size, nil // a local copy: sendfile, no storage request
		}
	}
	r, err := s.drv.Open(s.ctx(), blobName(d), size)
	if err != nil {
		if isNotExist(err) {
			s.sizes.Delete(d)
			return nil, 0, fmt.Errorf("open blob %s: %w", d, ErrBlobUnknown)
		}
		return nil, 0, fmt.Errorf("open blob %s: %w", d, err)
	}
	if s.lc != nil {
		s.lc.fetch(d, size, func() (io.ReadCloser, error) { return s.drv.Open(s.ctx(), blobName(d), size) })
	}
	if f, ok := r.(*os.File); ok {
		return f, size, nil // sendfile; a missing file failed at Open
	}
	return &blobReader{ReadSeekCloser: r, s: s, d: d}, size, nil
}

// blobReader maps a vanished object to ErrBlobUnknown.
type blobReader struct {
	io.ReadSeekCloser
	s *Store
	d oci.Digest
}

// Prefetch asks the storage for the bytes from offset before the caller
// answers its client (storage readers have it): a vanished blob is then
// ErrBlobUnknown, an unreachable storage its error, not a cut response.
func (r *blobReader) Prefetch(offset int64) error {
	p, ok := r.ReadSeekCloser.(interface{ Prefetch(int64) error })
	if !ok {
		return nil
	}
	err := p.Prefetch(offset)
	if err != nil && isNotExist(err) {
		r.s.sizes.Delete(r.d)
		err = fmt.Errorf("read blob %s: %w", r.d, ErrBlobUnknown)
	}
	return err
}

func (r *blobReader) Read(p []byte) (int, error) {
	n, err := r.ReadSeekCloser.Read(p)
	if err != nil && err != io.EOF && isNotExist(err) {
		r.s.sizes.Delete(r.d)
		err = fmt.Errorf("read blob %s: %w", r.d, ErrBlobUnknown)
	}
	return n, err
}

// Put stores the bytes of r as blob d and returns their count. maxSize < 0
// means no limit. The bytes go to a driver writer and become the object
// only after they verified against d (file system: temp file, fsync,
// rename; Azure: staged blocks, then the block list; S3: parts, then the
// completion; small blobs: one PUT), so the blob appears whole or not at
// all. On ErrDigestMismatch, ErrTooLarge or a read error nothing is
// visible. If the blob already exists, r is still read and verified (so
// the caller learns whether its bytes were right) but nothing is written;
// on a file system the blob's time is refreshed so GC's grace period
// protects it until the caller links it.
func (s *Store) Put(d oci.Digest, r io.Reader, maxSize int64) (int64, error) {
	d, err := checkDigest(d)
	if err != nil {
		return 0, err
	}
	if size, ok := s.touchBlob(d); ok {
		n, err := s.verifyStream(d, r, maxSize)
		if err != nil {
			return 0, fmt.Errorf("put blob %s: %w", d, err)
		}
		if n != size {
			// Same digest, different length: the stored object is damaged.
			return 0, fmt.Errorf("put blob %s: stored object holds %d bytes, the content %d", d, size, n)
		}
		return size, nil
	}
	w, err := s.drv.NewWriter(s.ctx(), blobName(d))
	if err != nil {
		return 0, fmt.Errorf("put blob %s: %w", d, err)
	}
	v := oci.NewVerifier(d)
	n, err := s.copyLimited(io.MultiWriter(w, v), r, maxSize)
	if err == nil && !v.Verified() {
		err = fmt.Errorf("%w: %d bytes read", ErrDigestMismatch, n)
	}
	if err != nil {
		w.Abort()
		return 0, fmt.Errorf("put blob %s: %w", d, err)
	}
	if err := s.commitBlob(w, d, n); err != nil {
		return 0, fmt.Errorf("put blob %s: %w", d, err)
	}
	return n, nil
}

// commitBlob commits a verified blob writer under the reference lock. A
// commit that lost to a concurrent writer of the same digest wrote the
// same bytes: it succeeds once the blob is there.
func (s *Store) commitBlob(w storage.ObjectWriter, d oci.Digest, n int64) error {
	s.refRLock()
	defer s.refRUnlock()
	err := w.Commit()
	if errors.Is(err, storage.ErrCommitRaced) {
		if size, serr := s.Stat(d); serr == nil && size == n {
			err = nil
		}
	}
	if err != nil {
		return err
	}
	s.sizes.Store(d, n)
	s.bumpGen()
	return nil
}

// touchBlob reports the size of an existing blob and, on a file system,
// refreshes its time.
func (s *Store) touchBlob(d oci.Digest) (int64, bool) {
	s.refRLock()
	defer s.refRUnlock()
	size, err := s.Stat(d)
	if err != nil {
		return 0, false
	}
	if t, ok := s.drv.(toucher); ok {
		if err := t.Touch(s.ctx(), blobName(d)); err != nil {
			return 0, false // GC may have removed it a moment ago: write it again
		}
	}
	s.bumpGen()
	return size, true
}

// copyLimited copies r to w, reading at most maxSize+1 bytes when
// maxSize >= 0, and reports ErrTooLarge when r had more than maxSize.
func (s *Store) copyLimited(w io.Writer, r io.Reader, maxSize int64) (int64, error) {
	if maxSize >= 0 {
		r = io.LimitReader(r, maxSize+1)
	}
	buf := s.getBuf()
	defer s.putBuf(buf)
	n, err := io.CopyBuffer(w, r, *buf)
	if err != nil {
		return n, err
	}
	if maxSize >= 0 && n > maxSize {
		return n, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxSize)
	}
	return n, nil
}

// verifyStream reads r and checks it against d without writing anything.
func (s *Store) verifyStream(d oci.Digest, r io.Reader, maxSize int64) (int64, error) {
	v := oci.NewVerifier(d)
	n, err := s.copyLimited(v, r, maxSize)
	if err != nil {
		return n, err
	}
	if !v.Verified() {
		return n, fmt.Errorf("%w: %d bytes read", ErrDigestMismatch, n)
	}
	return n, nil
}

// putBlobBytesLocked stores b (already verified against d) in one write
// unless the blob exists, in which case its time is refreshed (file
// system). The caller holds refMu shared.
func (s *Store) putBlobBytesLocked(d oci.Digest, b []byte) error {
	if info, err := s.statObj(blobName(d)); err == nil && info.Size == int64(len(b)) {
		s.bumpGen()
		if t, ok := s.drv.(toucher); ok {
			return t.Touch(s.ctx(), blobName(d))
		}
		return nil
	}
	if err := s.putObj(blobName(d), b); err != nil {
		return err
	}
	s.sizes.Store(d, int64(len(b)))
	s.bumpGen()
	return nil
}
