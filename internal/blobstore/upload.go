package blobstore

import (
	"crypto/rand"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airlockdev/airlock/internal/oci"
)

// Files inside root/uploads/<id>/.
const (
	uploadData  = "data"
	uploadState = "state"
)

// uploadIDBytes is the entropy of an upload id; ids are its lowercase hex.
const uploadIDBytes = 16

// Upload is a resumable blob upload. Values come from Store.NewUpload and
// Store.Upload; every handle for one id is the same *Upload, so its lock
// covers all requests for that upload.
type Upload struct {
	s  *Store
	id string

	size atomic.Int64 // bytes accepted so far; written under mu

	mu      sync.Mutex
	done    bool      // committed, cancelled or purged
	hash    hash.Hash // sha256 of the first size bytes; nil when unknown
	updated time.Time // last write
}

// uploadStateFile is root/uploads/<id>/state. The data file may be longer
// than Size after a crash in the middle of an append; it is cut back on load.
// The running hash is deliberately not persisted: data is not fsynced per
// append, so after a restart only a re-hash of the file proves its bytes.
type uploadStateFile struct {
	Size    int64     `json:"size"`
	Updated time.Time `json:"updated"`
}

// validUploadID accepts exactly the ids NewUpload makes: 32 lowercase hex.
func validUploadID(id string) bool {
	if len(id) != 2*uploadIDBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Store) uploadDir(id string) string { return filepath.Join(s.uploadsDir(), id) }

// ID returns the upload's id (32 lowercase hex characters).
func (u *Upload) ID() string { return u.id }

// Size returns the number of bytes accepted so far.
func (u *Upload) Size() int64 { return u.size.Load() }

func (u *Upload) dataPath() string  { return filepath.Join(u.s.uploadDir(u.id), uploadData) }
func (u *Upload) statePath() string { return filepath.Join(u.s.uploadDir(u.id), uploadState) }

// NewUpload starts an empty upload. Its directory is assembled in root/tmp
// and renamed into root/uploads, so an upload is either complete on disk or
// absent.
func (s *Store) NewUpload() (*Upload, error) {
	var raw [uploadIDBytes]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	u := &Upload{s: s, id: id, hash: oci.SHA256.New(), updated: s.now()}

	stage, err := os.MkdirTemp(s.tmpDir(), "upload-*")
	if err != nil {
		return nil, fmt.Errorf("new upload: %w", err)
	}
	fail := func(err error) (*Upload, error) {
		os.RemoveAll(stage)
		return nil, fmt.Errorf("new upload: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(stage, uploadData), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	st, err := u.stateBytes(0)
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(stage, uploadState), st, 0o600); err != nil {
		return fail(err)
	}
	s.upMu.Lock()
	defer s.upMu.Unlock()
	if err := os.Rename(stage, s.uploadDir(id)); err != nil {
		return fail(err)
	}
	s.uploads[id] = u
	return u, nil
}

// Upload returns the upload with this id, loading it from disk after a
// restart. Anything but an id this store issued is ErrUploadUnknown.
func (s *Store) Upload(id string) (*Upload, error) {
	if !validUploadID(id) {
		return nil, fmt.Errorf("upload %.40q: %w", id, ErrUploadUnknown)
	}
	s.upMu.Lock()
	defer s.upMu.Unlock()
	if u, ok := s.uploads[id]; ok {
		return u, nil
	}
	u, err := s.loadUpload(id)
	if err != nil {
		return nil, err
	}
	s.uploads[id] = u
	return u, nil
}

// errUploadBroken marks an upload directory that cannot be loaded.
var errUploadBroken = errors.New("upload state unreadable")

// errUploadBusy: the upload's data file is locked by another process (or
// another Store on the same root), whose request is appending to or
// committing it. The client may retry.
var errUploadBusy = fmt.Errorf("%w: another process is writing to the upload", ErrRangeInvalid)

// openData opens the data file and takes its exclusive flock without
// waiting (errUploadBusy when held elsewhere). Whoever writes, cuts or
// commits the data holds this lock, so a process that loads or purges the
// upload never cuts or removes bytes a live request is writing. Closing
// the file releases the lock.
func (u *Upload) openData(flag int) (*os.File, error) {
	f, err := os.OpenFile(u.dataPath(), flag, 0)
	if err != nil {
		return nil, err
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if isLocked(err) {
			return nil, errUploadBusy
		}
		return nil, fmt.Errorf("lock upload data: %w", err)
	}
	return f, nil
}

// readUploadState reads root/uploads/<id>/state; an unreadable or missing
// one is errUploadBroken.
func (s *Store) readUploadState(id string) (uploadStateFile, error) {
	var st uploadStateFile
	b, err := os.ReadFile(filepath.Join(s.uploadDir(id), uploadState))
	if err != nil {
		if isNotExist(err) {
			return st, fmt.Errorf("%w: no state", errUploadBroken)
		}
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Size < 0 {
		return st, fmt.Errorf("%w: bad state", errUploadBroken)
	}
	return st, nil
}

// loadUpload reads an upload from disk, holding its data lock while it
// checks (and after a crash cuts) the data file. The caller holds upMu.
func (s *Store) loadUpload(id string) (*Upload, error) {
	u := &Upload{s: s, id: id}
	f, err := u.openData(os.O_RDWR)
	if err != nil {
		if isNotExist(err) {
			if _, derr := os.Stat(s.uploadDir(id)); derr == nil {
				return nil, fmt.Errorf("upload %s: %w (%w: no data)", id, ErrUploadUnknown, errUploadBroken)
			}
			return nil, fmt.Errorf("upload %s: %w", id, ErrUploadUnknown)
		}
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	defer f.Close()
	st, err := s.readUploadState(id)
	if err != nil {
		if errors.Is(err, errUploadBroken) {
			return nil, fmt.Errorf("upload %s: %w (%w)", id, ErrUploadUnknown, err)
		}
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() < st.Size {
		return nil, fmt.Errorf("upload %s: %w (%w: data shorter than state)", id, ErrUploadUnknown, errUploadBroken)
	}
	if fi.Size() > st.Size {
		// A crash in the middle of an append: drop the unacknowledged tail.
		if err := f.Truncate(st.Size); err != nil {
			return nil, fmt.Errorf("upload %s: cut back interrupted append: %w", id, err)
		}
	}
	u.size.Store(st.Size)
	u.updated = st.Updated
	return u, nil // hash nil: Commit re-hashes the file
}

// stateBytes renders the state file for size bytes.
func (u *Upload) stateBytes(size int64) ([]byte, error) {
	return json.Marshal(uploadStateFile{Size: size, Updated: u.updated})
}

// Append writes r at offset, which must equal Size(), and returns the
// upload's new total size (not the count appended). maxBytes < 0 means no
// limit. If r fails, or holds more than maxBytes (ErrTooLarge), the data
// file is cut back and the upload is left exactly as it was. An append
// while another request appends to the same upload fails at once with
// ErrRangeInvalid rather than waiting for it.
func (u *Upload) Append(offset int64, r io.Reader, maxBytes int64) (int64, error) {
	if !u.mu.TryLock() {
		return u.Size(), fmt.Errorf("append to upload %s: %w: another request is writing to it", u.id, ErrRangeInvalid)
	}
	defer u.mu.Unlock()
	if u.done {
		return 0, fmt.Errorf("append to upload %s: %w", u.id, ErrUploadUnknown)
	}
	old := u.size.Load()
	if offset != old {
		return old, fmt.Errorf("append to upload %s: %w: offset %d, upload holds %d bytes", u.id, ErrRangeInvalid, offset, old)
	}
	f, err := u.openData(os.O_WRONLY)
	if err != nil {
		if isNotExist(err) {
			return 0, fmt.Errorf("append to upload %s: %w", u.id, ErrUploadUnknown)
		}
		return old, fmt.Errorf("append to upload %s: %w", u.id, err)
	}
	defer f.Close()
	if _, err := f.Seek(old, io.SeekStart); err != nil {
		return old, fmt.Errorf("append to upload %s: %w", u.id, err)
	}
	var saved []byte
	var w io.Writer = f
	if u.hash != nil {
		if saved, err = u.hash.(encoding.BinaryMarshaler).MarshalBinary(); err != nil {
			return old, fmt.Errorf("append to upload %s: save hash: %w", u.id, err)
		}
		w = io.MultiWriter(f, u.hash)
	}
	prevUpdated := u.updated
	n, err := u.s.copyLimited(w, r, maxBytes)
	if err == nil {
		u.updated = u.s.now()
		err = u.saveState(old + n)
	}
	if err != nil {
		u.updated = prevUpdated
		if terr := f.Truncate(old); terr != nil {
			// Size stays old and Commit cuts the file to Size, so the
			// extra bytes can never reach a blob.
			u.s.log.Warn("cut back failed append", keyUpload, u.id, keyErr, terr)
		}
		if u.hash != nil && u.hash.(encoding.BinaryUnmarshaler).UnmarshalBinary(saved) != nil {
			u.hash = nil // Commit re-hashes from the file
		}
		return old, fmt.Errorf("append to upload %s: %w", u.id, err)
	}
	u.size.Store(old + n)
	return old + n, nil
}

// saveState records size and activity time. Not fsynced: the data is not either, and
// Commit verifies every byte before anything becomes a blob.
func (u *Upload) saveState(size int64) error {
	b, err := u.stateBytes(size)
	if err != nil {
		return err
	}
	return u.s.writeFileAtomic(u.statePath(), b, u.s.now(), false)
}

// Commit verifies the upload against d, moves it into the blob store as d
// (fsync of file and directory), links it into repo and removes the upload;
// it returns the blob's size. A sha256 digest is checked against the hash
// kept in memory while appending; any other algorithm, or an upload loaded
// after a restart, re-reads the file. On ErrDigestMismatch nothing is stored
// and the upload is removed as well: the client must start over, as the
// distribution spec expects of a failed upload.
func (u *Upload) Commit(repo string, d oci.Digest) (int64, error) {
	s := u.s
	if err := s.checkRepo(repo); err != nil {
		return 0, fmt.Errorf("commit upload %s: %w", u.id, err)
	}
	d, err := checkDigest(d)
	if err != nil {
		return 0, fmt.Errorf("commit upload %s: %w", u.id, err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return 0, fmt.Errorf("commit upload %s: %w", u.id, ErrUploadUnknown)
	}
	size := u.size.Load()
	f, err := u.openData(os.O_RDWR)
	if err != nil {
		if isNotExist(err) {
			return 0, fmt.Errorf("commit upload %s: %w", u.id, ErrUploadUnknown)
		}
		return 0, fmt.Errorf("commit upload %s: %w", u.id, err)
	}
	defer f.Close() // holds the data lock until the upload is gone
	ok, err := u.verify(f, d, size)
	if err != nil {
		return 0, fmt.Errorf("commit upload %s: %w", u.id, err)
	}
	if !ok {
		if err := s.dropUpload(u); err != nil {
			s.log.Warn("remove upload after digest mismatch", keyUpload, u.id, keyErr, err)
		}
		return 0, fmt.Errorf("commit upload %s as %s: %w (%d bytes); upload removed", u.id, d, ErrDigestMismatch, size)
	}
	s.refRLock()
	err = s.installBlobLocked(u.dataPath(), d)
	if err != nil {
		s.refRUnlock()
		return 0, fmt.Errorf("commit upload %s as %s: %w", u.id, d, err) // upload intact: retryable
	}
	err = s.linkLocked(repo, d)
	s.refRUnlock()
	if derr := s.dropUpload(u); derr != nil {
		s.log.Warn("remove committed upload", keyUpload, u.id, keyErr, derr)
	}
	if err != nil {
		return 0, fmt.Errorf("commit upload %s: blob %s stored but not linked into %s: %w", u.id, d, repo, err)
	}
	return size, nil
}

// verify cuts the data file f to size, checks it against d and fsyncs it.
func (u *Upload) verify(f *os.File, d oci.Digest, size int64) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if fi.Size() != size {
		if err := f.Truncate(size); err != nil {
			return false, err
		}
	}
	var got oci.Digest
	if d.Algorithm() == oci.SHA256 && u.hash != nil {
		got = oci.SHA256.FromHash(u.hash)
	} else {
		h := d.Algorithm().New()
		buf := u.s.getBuf()
		n, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, size), *buf)
		u.s.putBuf(buf)
		if err != nil {
			return false, err
		}
		if n != size {
			return false, fmt.Errorf("data file holds %d bytes, want %d", n, size)
		}
		got = d.Algorithm().FromHash(h)
	}
	if got != d {
		return false, nil
	}
	return true, f.Sync()
}

// Cancel removes the upload and its data.
func (u *Upload) Cancel() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return fmt.Errorf("cancel upload %s: %w", u.id, ErrUploadUnknown)
	}
	if err := u.s.dropUpload(u); err != nil {
		return fmt.Errorf("cancel upload %s: %w", u.id, err)
	}
	return nil
}

// dropUpload marks u done, forgets it and removes its directory: renamed
// into root/tmp first (atomic), then deleted. The caller holds u.mu.
func (s *Store) dropUpload(u *Upload) error {
	u.done = true
	s.upMu.Lock()
	defer s.upMu.Unlock()
	delete(s.uploads, u.id)
	return s.removeUploadDirLocked(u.id)
}

// removeUploadDirLocked removes root/uploads/<id>. The caller holds upMu.
func (s *Store) removeUploadDirLocked(id string) error {
	grave, err := os.MkdirTemp(s.tmpDir(), "dead-*")
	if err != nil {
		return err
	}
	if err := os.Rename(s.uploadDir(id), filepath.Join(grave, id)); err != nil {
		os.Remove(grave)
		if isNotExist(err) {
			return nil
		}
		return err
	}
	return os.RemoveAll(grave)
}

// PurgeUploads removes uploads idle for longer than Options.UploadTTL (and
// directories a crash left unreadable), skipping any upload a request is
// using right now, in this process or another (its data file is locked).
// Uploads it finds on disk are not loaded into this Store. It also removes
// temp files of writers that are gone (see cleanTmp). It returns how many
// uploads it removed.
func (s *Store) PurgeUploads() (int, error) {
	if sc, err := s.cleanTmp(); err != nil {
		s.log.Warn("clean temp files of writers that are gone", keyPath, s.tmpRoot(), keyErr, err)
	} else if sc.removed > 0 {
		s.log.Info("removed leftovers of interrupted writes", keyPath, s.tmpRoot(), keyCount, sc.removed)
	}
	entries, err := os.ReadDir(s.uploadsDir())
	if err != nil {
		return 0, fmt.Errorf("purge uploads: %w", err)
	}
	cutoff := s.now().Add(-s.uploadTTL)
	removed := 0
	var errs []error
	for _, e := range entries {
		id := e.Name()
		if !validUploadID(id) {
			s.log.Warn("foreign entry in uploads directory left alone", keyPath, filepath.Join(s.uploadsDir(), id))
			continue
		}
		s.upMu.Lock()
		u := s.uploads[id]
		s.upMu.Unlock()
		var gone bool
		if u != nil {
			gone, err = s.purgeLive(u, cutoff)
		} else {
			gone, err = s.purgeOnDisk(id, cutoff)
		}
		if err != nil {
			errs = append(errs, err)
		}
		if gone {
			removed++
		}
	}
	if removed > 0 {
		s.log.Info("purged idle uploads", keyCount, removed)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("purge uploads: %w", err)
	}
	return removed, nil
}

// purgeLive removes an upload this Store holds in memory if it has been
// idle since before cutoff and nobody is using it.
func (s *Store) purgeLive(u *Upload, cutoff time.Time) (bool, error) {
	if !u.mu.TryLock() {
		return false, nil // a request of this Store is using it
	}
	defer u.mu.Unlock()
	if u.done || !u.updated.Before(cutoff) {
		return false, nil
	}
	f, err := u.openData(os.O_RDONLY)
	switch {
	case errors.Is(err, errUploadBusy):
		return false, nil // another process is writing to it
	case err != nil && !isNotExist(err):
		return false, err
	case err == nil:
		defer f.Close()
		// Another process may have written to it since this Store last did.
		if st, err := s.readUploadState(u.id); err == nil && !st.Updated.Before(cutoff) {
			return false, nil
		}
	}
	return true, s.dropUpload(u)
}

// purgeOnDisk removes an upload this Store has not loaded if it has been
// idle since before cutoff, or is unreadable, and no process is writing to
// it.
func (s *Store) purgeOnDisk(id string, cutoff time.Time) (bool, error) {
	u := &Upload{s: s, id: id}
	f, err := u.openData(os.O_RDONLY)
	switch {
	case errors.Is(err, errUploadBusy):
		return false, nil
	case isNotExist(err):
		if _, derr := os.Stat(s.uploadDir(id)); derr != nil {
			return false, nil // gone meanwhile (committed, cancelled)
		}
		// No data file: broken.
	case err != nil:
		return false, err
	default:
		defer f.Close()
		st, err := s.readUploadState(id)
		if err != nil && !errors.Is(err, errUploadBroken) {
			return false, err
		}
		if err == nil && !st.Updated.Before(cutoff) {
			return false, nil
		}
	}
	s.upMu.Lock()
	defer s.upMu.Unlock()
	if _, live := s.uploads[id]; live {
		return false, nil // a request loaded it meanwhile
	}
	if err := s.removeUploadDirLocked(id); err != nil {
		return false, err
	}
	s.log.Info("removed idle or unreadable upload", keyUpload, id)
	return true, nil
}
