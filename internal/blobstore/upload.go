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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

// An upload lives entirely on the store's storage, so any replica (any
// Store on the same root, container or bucket) can continue it:
//
//	uploads/<id>/state                 {size, hash, parts, started, updated} (JSON)
//	uploads/<id>/p-<start>-<random>     the bytes of one append, start in 16 hex digits
//
// Each Append writes one part object (through a driver writer: visible
// only whole) and then replaces the state, which lists the parts that make
// up the upload and the running sha256 state after them. A crash between
// the two leaves a part no state lists: it is ignored, and removed with
// the upload. Commit checks the digest from the saved hash (re-reading the
// parts only for another algorithm), then makes the blob: the file system
// renames a single part into place; otherwise the parts stream into a
// blob writer and are verified once more before the blob is committed.
const (
	uploadStateName = "state"
	uploadPartTag   = "p-"
)

// uploadIDBytes is the entropy of an upload id; ids are its lowercase hex.
const uploadIDBytes = 16

// maxUploadState bounds a state object (a part per append; a client that
// appends in tiny chunks meets this limit long after any sane push).
const maxUploadState = 4 << 20

// Upload is a resumable blob upload. Values come from Store.NewUpload and
// Store.Upload; in one Store every handle for one id is the same *Upload,
// so its lock orders the requests for that upload.
type Upload struct {
	s  *Store
	id string

	size atomic.Int64 // bytes accepted so far, as last read or written

	mu   sync.Mutex
	done bool // committed or cancelled through this Store
}

// uploadState is uploads/<id>/state.
type uploadState struct {
	Size    int64        `json:"size"`
	Hash    []byte       `json:"sha256,omitempty"` // sha256 state after Size bytes (encoding.BinaryMarshaler)
	Parts   []uploadPart `json:"parts,omitempty"`
	Started time.Time    `json:"started"`
	Updated time.Time    `json:"updated"`
}

type uploadPart struct {
	Name string `json:"name"` // below uploads/<id>/
	Size int64  `json:"size"`
}

// errUploadBroken marks an upload whose state cannot be used.
var errUploadBroken = errors.New("upload state unreadable")

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

func uploadName(id string) string { return dirUploads + "/" + id }

// ID returns the upload's id (32 lowercase hex characters).
func (u *Upload) ID() string { return u.id }

// Size returns the number of bytes accepted so far (as of the last time
// this Store read or wrote the upload's state).
func (u *Upload) Size() int64 { return u.size.Load() }

func (u *Upload) stateName() string { return uploadName(u.id) + "/" + uploadStateName }

// NewUpload starts an empty upload: its state object is created.
func (s *Store) NewUpload() (*Upload, error) {
	var raw [uploadIDBytes]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	u := &Upload{s: s, id: id}
	now := s.now()
	h, _ := oci.SHA256.New().(encoding.BinaryMarshaler).MarshalBinary()
	if err := u.saveState(uploadState{Hash: h, Started: now, Updated: now}); err != nil {
		return nil, fmt.Errorf("new upload: %w", err)
	}
	s.upMu.Lock()
	s.uploads[id] = u
	s.upMu.Unlock()
	return u, nil
}

// Upload returns the upload with this id, whichever Store started it, with
// its size as the storage holds it now. Anything but a live id this store
// issued is ErrUploadUnknown.
func (s *Store) Upload(id string) (*Upload, error) {
	if !validUploadID(id) {
		return nil, fmt.Errorf("upload %.40q: %w", id, ErrUploadUnknown)
	}
	s.upMu.Lock()
	u, ok := s.uploads[id]
	if !ok {
		u = &Upload{s: s, id: id}
	}
	s.upMu.Unlock()
	if _, err := u.loadState(); err != nil {
		if ok && errors.Is(err, ErrUploadUnknown) {
			s.upMu.Lock()
			delete(s.uploads, id) // finished through another Store
			s.upMu.Unlock()
		}
		return nil, err
	}
	if !ok {
		s.upMu.Lock()
		if prev, ok := s.uploads[id]; ok {
			u = prev // another request loaded it meanwhile
		} else {
			s.uploads[id] = u
		}
		s.upMu.Unlock()
	}
	return u, nil
}

// loadState reads the upload's state and records its size.
func (u *Upload) loadState() (uploadState, error) {
	st, err := u.s.readUploadState(u.id)
	if err != nil {
		if isNotExist(err) {
			return st, fmt.Errorf("upload %s: %w", u.id, ErrUploadUnknown)
		}
		if errors.Is(err, errUploadBroken) {
			return st, fmt.Errorf("upload %s: %w (%w)", u.id, ErrUploadUnknown, err)
		}
		return st, fmt.Errorf("upload %s: %w", u.id, err)
	}
	u.size.Store(st.Size)
	return st, nil
}

// readUploadState reads uploads/<id>/state; a malformed one is
// errUploadBroken, a missing one fs.ErrNotExist.
func (s *Store) readUploadState(id string) (uploadState, error) {
	var st uploadState
	b, err := s.readSmall(uploadName(id)+"/"+uploadStateName, maxUploadState)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil || !st.valid(id) {
		return st, fmt.Errorf("%w: bad state", errUploadBroken)
	}
	return st, nil
}

// valid checks that the parts add up to the size and are named as
// Append names them (so a state cannot point outside its upload).
func (st uploadState) valid(id string) bool {
	var sum int64
	for _, p := range st.Parts {
		start, ok := partStart(p.Name)
		if !ok || start != sum || p.Size <= 0 {
			return false
		}
		sum += p.Size
	}
	return sum == st.Size
}

// partName is p-<start as 16 hex digits>-<8 random hex>.
func partName(start int64) string {
	var raw [4]byte
	rand.Read(raw[:])
	return fmt.Sprintf("%s%016x-%s", uploadPartTag, start, hex.EncodeToString(raw[:]))
}

func partStart(name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, uploadPartTag)
	if !ok || len(rest) != 16+1+8 || rest[16] != '-' {
		return 0, false
	}
	if _, err := hex.DecodeString(rest[17:]); err != nil {
		return 0, false
	}
	start, err := strconv.ParseInt(rest[:16], 16, 64)
	return start, err == nil && start >= 0
}

func (u *Upload) saveState(st uploadState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return u.s.putObj(u.stateName(), b)
}

// Append writes r at offset, which must equal the upload's size, and
// returns the new total size (not the count appended). maxBytes < 0 means
// no limit. If r fails, or holds more than maxBytes (ErrTooLarge), the
// upload is left exactly as it was. An append while another request of
// this Store appends to the same upload fails at once with ErrRangeInvalid
// rather than waiting for it. Two replicas appending to one upload at the
// same moment (a client bug) lose one append, never corrupt the blob:
// Commit verifies every byte.
func (u *Upload) Append(offset int64, r io.Reader, maxBytes int64) (int64, error) {
	if !u.mu.TryLock() {
		return u.Size(), fmt.Errorf("append to upload %s: %w: another request is writing to it", u.id, ErrRangeInvalid)
	}
	defer u.mu.Unlock()
	if u.done {
		return 0, fmt.Errorf("append to upload %s: %w", u.id, ErrUploadUnknown)
	}
	st, err := u.loadState()
	if err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	if offset != st.Size {
		return st.Size, fmt.Errorf("append to upload %s: %w: offset %d, upload holds %d bytes", u.id, ErrRangeInvalid, offset, st.Size)
	}
	var h hash.Hash
	if st.Hash != nil {
		h = oci.SHA256.New()
		if h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash) != nil {
			h = nil // Commit re-hashes the parts
		}
	}
	part := partName(st.Size)
	w, err := u.s.drv.NewWriter(u.s.ctx(), uploadName(u.id)+"/"+part)
	if err != nil {
		return st.Size, fmt.Errorf("append to upload %s: %w", u.id, err)
	}
	var dst io.Writer = w
	if h != nil {
		dst = io.MultiWriter(w, h)
	}
	n, err := u.s.copyLimited(dst, r, maxBytes)
	if err != nil {
		w.Abort()
		return st.Size, fmt.Errorf("append to upload %s: %w", u.id, err)
	}
	if n == 0 {
		w.Abort()
		return st.Size, nil
	}
	if err := w.Commit(); err != nil {
		return st.Size, fmt.Errorf("append to upload %s: %w", u.id, err)
	}
	st.Parts = append(st.Parts, uploadPart{Name: part, Size: n})
	st.Size += n
	st.Hash = nil
	if h != nil {
		st.Hash, _ = h.(encoding.BinaryMarshaler).MarshalBinary()
	}
	st.Updated = u.s.now()
	if err := u.saveState(st); err != nil {
		u.s.deleteObj(uploadName(u.id) + "/" + part)
		return st.Size - n, fmt.Errorf("append to upload %s: %w", u.id, err)
	}
	u.size.Store(st.Size)
	return st.Size, nil
}

// Commit verifies the upload against d, makes it blob d, links it into
// repo and removes the upload; it returns the blob's size. A sha256 digest
// is checked against the saved hash; another algorithm re-reads the parts.
// On ErrDigestMismatch nothing is stored and the upload is removed as
// well: the client must start over, as the distribution spec expects of a
// failed upload.
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
	st, err := u.loadState()
	if err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	ok, err := u.matches(st, d)
	if err != nil {
		return 0, fmt.Errorf("commit upload %s: %w", u.id, err)
	}
	if !ok {
		if err := s.dropUpload(u); err != nil {
			s.log.Warn("remove upload after digest mismatch", keyUpload, u.id, keyErr, err)
		}
		return 0, fmt.Errorf("commit upload %s as %s: %w (%d bytes); upload removed", u.id, d, ErrDigestMismatch, st.Size)
	}
	if err := u.install(st, d); err != nil {
		return 0, fmt.Errorf("commit upload %s as %s: %w", u.id, d, err) // upload intact: retryable
	}
	s.refRLock()
	err = s.linkLocked(repo, d, true)
	s.refRUnlock()
	if derr := s.dropUpload(u); derr != nil {
		s.log.Warn("remove committed upload", keyUpload, u.id, keyErr, derr)
	}
	if err != nil {
		return 0, fmt.Errorf("commit upload %s: blob %s stored but not linked into %s: %w", u.id, d, repo, err)
	}
	return st.Size, nil
}

// matches reports whether the upload's bytes hash to d.
func (u *Upload) matches(st uploadState, d oci.Digest) (bool, error) {
	if d.Algorithm() == oci.SHA256 && st.Hash != nil {
		h := oci.SHA256.New()
		if h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash) == nil {
			return oci.SHA256.FromHash(h) == d, nil
		}
	}
	h := d.Algorithm().New()
	if err := u.copyParts(h, st); err != nil {
		return false, err
	}
	return d.Algorithm().FromHash(h) == d, nil
}

// copyParts streams the upload's parts, in order, into w.
func (u *Upload) copyParts(w io.Writer, st uploadState) error {
	buf := u.s.getBuf()
	defer u.s.putBuf(buf)
	for _, p := range st.Parts {
		r, err := u.s.drv.Open(u.s.ctx(), uploadName(u.id)+"/"+p.Name, p.Size)
		if err != nil {
			return fmt.Errorf("part %s: %w", p.Name, err)
		}
		n, err := io.CopyBuffer(w, io.LimitReader(r, p.Size), *buf)
		r.Close()
		if err == nil && n != p.Size {
			err = fmt.Errorf("holds %d bytes, want %d", n, p.Size)
		}
		if err != nil {
			return fmt.Errorf("part %s: %w", p.Name, err)
		}
	}
	return nil
}

// install makes the verified upload blob d. An existing blob is kept (its
// time refreshed on a file system). A single part on a file system is
// renamed into place; otherwise the parts stream into a blob writer,
// which commits only if they hash to d once more.
func (u *Upload) install(st uploadState, d oci.Digest) error {
	s := u.s
	if _, ok := s.touchBlob(d); ok {
		return nil
	}
	if mv, ok := s.drv.(mover); ok && len(st.Parts) == 1 {
		s.refRLock()
		defer s.refRUnlock()
		if err := mv.Move(s.ctx(), uploadName(u.id)+"/"+st.Parts[0].Name, blobName(d)); err != nil {
			return err
		}
		s.sizes.Store(d, st.Size)
		s.bumpGen()
		return nil
	}
	w, err := s.drv.NewWriter(s.ctx(), blobName(d))
	if err != nil {
		return err
	}
	v := oci.NewVerifier(d)
	if err := u.copyParts(io.MultiWriter(w, v), st); err != nil {
		w.Abort()
		return err
	}
	if !v.Verified() {
		w.Abort()
		return fmt.Errorf("%w: the stored parts changed after they were written", ErrDigestMismatch)
	}
	return s.commitBlob(w, d, st.Size)
}

// Cancel removes the upload and its data.
func (u *Upload) Cancel() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return fmt.Errorf("cancel upload %s: %w", u.id, ErrUploadUnknown)
	}
	if _, err := u.loadState(); err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	if err := u.s.dropUpload(u); err != nil {
		return fmt.Errorf("cancel upload %s: %w", u.id, err)
	}
	return nil
}

// dropUpload marks u done, forgets it and removes its objects, the state
// first (so no replica continues it). The caller holds u.mu.
func (s *Store) dropUpload(u *Upload) error {
	u.done = true
	s.upMu.Lock()
	delete(s.uploads, u.id)
	s.upMu.Unlock()
	return s.removeUploadObjects(u.id)
}

// removeUploadObjects deletes uploads/<id>/: state first, then the parts.
func (s *Store) removeUploadObjects(id string) error {
	if err := s.deleteObj(uploadName(id) + "/" + uploadStateName); err != nil && !isNotExist(err) {
		return err
	}
	var names []string
	if err := s.list(uploadName(id), func(o ObjectInfo) error {
		names = append(names, o.Name)
		return nil
	}); err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if err := s.deleteObj(n); err != nil && !isNotExist(err) {
			errs = append(errs, err)
		}
	}
	if s.fsd != nil && len(errs) == 0 {
		// Only this upload's own requests create files in its directory.
		os.Remove(filepath.Join(s.root, filepath.FromSlash(uploadName(id))))
	}
	return errors.Join(errs...)
}

// PurgeUploads removes uploads idle for longer than Options.UploadTTL, and
// the objects of uploads a crash left without a usable state once they are
// that old, skipping any upload a request of this Store is using right
// now. It lists uploads/ once. On a file system it also removes temp files
// of writers that are gone (see cleanTmp). It returns how many uploads it
// removed.
func (s *Store) PurgeUploads() (int, error) {
	if s.fsd != nil {
		if sc, err := s.cleanTmp(); err != nil {
			s.log.Warn("clean temp files of writers that are gone", keyPath, s.tmpRoot(), keyErr, err)
		} else if sc.removed > 0 {
			s.log.Info("removed leftovers of interrupted writes", keyPath, s.tmpRoot(), keyCount, sc.removed)
		}
	}
	cutoff := s.now().Add(-s.uploadTTL)
	newest := map[string]time.Time{} // upload id → time of its newest object
	err := s.list(dirUploads, func(o ObjectInfo) error {
		id, _, _ := strings.Cut(strings.TrimPrefix(o.Name, dirUploads+"/"), "/")
		if !validUploadID(id) {
			s.log.Warn("foreign object in uploads left alone", keyPath, o.Name)
			return nil
		}
		if t, ok := newest[id]; !ok || o.ModTime.After(t) {
			newest[id] = o.ModTime
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge uploads: %w", err)
	}
	removed := 0
	var errs []error
	for id, last := range newest {
		gone, err := s.purgeUpload(id, last, cutoff)
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

// purgeUpload removes upload id if it has been idle since before cutoff
// (by its state, or by its newest object when the state is unusable) and
// no request of this Store holds it.
func (s *Store) purgeUpload(id string, last, cutoff time.Time) (bool, error) {
	s.upMu.Lock()
	u := s.uploads[id]
	s.upMu.Unlock()
	if u != nil {
		if !u.mu.TryLock() {
			return false, nil // a request of this Store is using it
		}
		defer u.mu.Unlock()
	}
	st, err := s.readUploadState(id)
	switch {
	case err == nil:
		if !st.Updated.Before(cutoff) {
			return false, nil
		}
	case isNotExist(err) || errors.Is(err, errUploadBroken):
		if !last.Before(cutoff) {
			return false, nil // possibly an append or a removal in flight
		}
	default:
		return false, err
	}
	if u != nil {
		u.done = true
		s.upMu.Lock()
		delete(s.uploads, id)
		s.upMu.Unlock()
	}
	if err := s.removeUploadObjects(id); err != nil {
		return false, err
	}
	s.log.Info("removed idle or unreadable upload", keyUpload, id)
	return true, nil
}
