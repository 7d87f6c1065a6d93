package blobstore

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/airlockdev/airlock/internal/oci"
)

// Stat returns the size of blob d, or ErrBlobUnknown.
func (s *Store) Stat(d oci.Digest) (int64, error) {
	d, err := checkDigest(d)
	if err != nil {
		return 0, err
	}
	info, err := s.drv.Stat(blobName(d))
	if err != nil {
		if isNotExist(err) {
			return 0, fmt.Errorf("stat blob %s: %w", d, ErrBlobUnknown)
		}
		return 0, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return info.Size, nil
}

// Open opens blob d for reading and returns it with its size; the caller
// closes it (and typically serves it with http.ServeContent, which uses
// sendfile). A blob removed by GC while open stays readable through the
// returned file.
func (s *Store) Open(d oci.Digest) (*os.File, int64, error) {
	d, err := checkDigest(d)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		if isNotExist(err) {
			return nil, 0, fmt.Errorf("open blob %s: %w", d, ErrBlobUnknown)
		}
		return nil, 0, fmt.Errorf("open blob %s: %w", d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("open blob %s: %w", d, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("open blob %s: not a regular file", d)
	}
	return f, fi.Size(), nil
}

// Put stores the bytes of r as blob d and returns their count. maxSize < 0
// means no limit. The bytes go to a temp file that is verified against d,
// fsynced and renamed into place (then the directory is fsynced), so the
// blob appears whole or not at all. On ErrDigestMismatch, ErrTooLarge or a
// read error nothing is left behind. If the blob already exists, r is still
// read and verified (so the caller learns whether its bytes were right) but
// nothing is written, and the blob's time is refreshed so GC's grace period
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
			// Same digest, different length: the stored file is damaged.
			return 0, fmt.Errorf("put blob %s: stored file holds %d bytes, the content %d", d, size, n)
		}
		return size, nil
	}
	tmp, n, err := s.writeTemp(d, r, maxSize)
	if err != nil {
		return 0, fmt.Errorf("put blob %s: %w", d, err)
	}
	s.refRLock()
	err = s.installBlobLocked(tmp, d)
	s.refRUnlock()
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("put blob %s: %w", d, err)
	}
	return n, nil
}

// touchBlob refreshes the time of an existing blob and reports its size.
func (s *Store) touchBlob(d oci.Digest) (int64, bool) {
	s.refRLock()
	defer s.refRUnlock()
	p := s.blobPath(d)
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	if err := s.touch(p); err != nil {
		return 0, false // GC may have removed it a moment ago: write it again
	}
	s.bumpGen()
	return fi.Size(), true
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

// writeTemp streams r into a new file in root/tmp, verifying against d, and
// fsyncs it. On any error the temp file is removed.
func (s *Store) writeTemp(d oci.Digest, r io.Reader, maxSize int64) (string, int64, error) {
	f, err := os.CreateTemp(s.tmpDir(), "blob-*")
	if err != nil {
		return "", 0, err
	}
	tmp := f.Name()
	fail := func(err error) (string, int64, error) {
		f.Close()
		os.Remove(tmp)
		return "", 0, err
	}
	v := oci.NewVerifier(d)
	n, err := s.copyLimited(io.MultiWriter(f, v), r, maxSize)
	if err != nil {
		return fail(err)
	}
	if !v.Verified() {
		return fail(fmt.Errorf("%w: %d bytes read", ErrDigestMismatch, n))
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", 0, err
	}
	return tmp, n, nil
}

// installBlobLocked renames a verified, fsynced file into the blob tree and
// fsyncs the directory. The caller holds refMu shared. Concurrent installs of
// the same digest rename identical content over each other, which is safe.
func (s *Store) installBlobLocked(src string, d oci.Digest) error {
	dst := s.blobPath(d)
	dir := filepath.Dir(dst)
	if err := mkdirAllDurable(dir); err != nil {
		return err
	}
	if err := s.touch(src); err != nil {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	s.bumpGen()
	return syncDir(dir)
}

// putBlobBytesLocked stores b (already verified against d) unless the blob
// exists, in which case its time is refreshed. The caller holds refMu shared.
func (s *Store) putBlobBytesLocked(d oci.Digest, b []byte) error {
	p := s.blobPath(d)
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Size() == int64(len(b)) {
		s.bumpGen()
		return s.touch(p)
	}
	f, err := os.CreateTemp(s.tmpDir(), "blob-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.installBlobLocked(tmp, d)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
