package blobstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// lockFileName is root/lock: the store-wide reference lock shared by every
// process that opens the root, and the reference token GC compares.
const lockFileName = "lock"

// tokenSize is the size of the reference token at the start of root/lock.
const tokenSize = 8

// flock applies how (unix.LOCK_SH, LOCK_EX or LOCK_UN, optionally with
// LOCK_NB) to f, retrying when a signal interrupts the call. Locks belong
// to the open file description: two opens of one file conflict even in one
// process, and closing f releases its lock.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// isLocked reports a non-blocking flock that found the file locked by
// another owner.
func isLocked(err error) bool { return errors.Is(err, unix.EWOULDBLOCK) }

// tryLockFile opens path and takes an exclusive flock on it without
// waiting. busy means another open file description holds a lock on it (a
// live writer); the caller closes f when done. A missing path is returned
// as the open error.
func tryLockFile(path string) (f *os.File, busy bool, err error) {
	f, err = os.Open(path)
	if err != nil {
		return nil, false, err
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if isLocked(err) {
			return nil, true, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, false, nil
}

// refLock is the cross-process half of the reference lock on a file
// system root; on object storage there is none (a nil *refLock, whose
// methods do nothing).
//
// On a file system: the cross-process half of the reference lock. Within a process
// the Store's refMu orders operations; across processes every Store holds a
// shared flock on root/lock while any of its reference-creating operations
// runs (counted, so the flock is taken by the first and released by the
// last), and GC holds it exclusively while it deletes.
type refLock struct {
	f *os.File

	mu     sync.Mutex
	shared int // operations in this Store holding the shared flock; guarded by mu
}

// openRefLock opens (creating if needed) root/lock with room for the token.
func openRefLock(root string) (*refLock, error) {
	p := filepath.Join(root, lockFileName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() < tokenSize {
		// Growing to the same size in two processes at once is harmless.
		err = f.Truncate(tokenSize)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &refLock{f: f}, nil
}

// rLock adds this operation to the Store's shared hold, waiting while
// another process's GC holds the lock exclusively. The operation is counted
// even when the flock fails, so rUnlock stays balanced.
func (l *refLock) rLock() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.shared++
	if l.shared == 1 {
		return flock(l.f, unix.LOCK_SH)
	}
	return nil
}

// rUnlock ends one operation's hold; the last one releases the flock.
func (l *refLock) rUnlock() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.shared--
	if l.shared == 0 {
		return flock(l.f, unix.LOCK_UN)
	}
	return nil
}

// token reads the reference token: a random value every reference-creating
// operation of any process rewrites while it holds the shared lock.
func (l *refLock) token() (uint64, error) {
	if l == nil {
		return 0, nil
	}
	var b [tokenSize]byte
	if _, err := l.f.ReadAt(b[:], 0); err != nil {
		return 0, fmt.Errorf("read reference token: %w", err)
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// newToken writes a fresh random token (no fsync: only live processes
// compare it, and they share the page cache).
func (l *refLock) newToken() error {
	if l == nil {
		return nil
	}
	var b [tokenSize]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	_, err := l.f.WriteAt(b[:], 0)
	return err
}

// refRLock enters a reference-creating (or -removing) operation: refMu
// shared in this process, root/lock shared across processes. It never
// fails: a flock error (not expected on a local file system) is logged and
// the operation goes on with only the in-process lock.
func (s *Store) refRLock() {
	s.refMu.RLock()
	if err := s.xref.rLock(); err != nil {
		s.log.Warn("shared reference lock failed; a GC in another process may not see this write", keyErr, err)
	}
}

// refRUnlock leaves what refRLock entered.
func (s *Store) refRUnlock() {
	if err := s.xref.rUnlock(); err != nil {
		s.log.Warn("release shared reference lock", keyErr, err)
	}
	s.refMu.RUnlock()
}

// refLockExclusive stops every reference-creating operation of every
// process on this root: refMu exclusively (so this Store holds no shared
// flock), then root/lock exclusively.
func (s *Store) refLockExclusive() error {
	s.refMu.Lock()
	if s.xref == nil {
		return nil // object storage: no cross-process lock (see doc.go)
	}
	if err := flock(s.xref.f, unix.LOCK_EX); err != nil {
		s.refMu.Unlock()
		return fmt.Errorf("lock %s: %w", s.xref.f.Name(), err)
	}
	return nil
}

// refUnlockExclusive undoes refLockExclusive.
func (s *Store) refUnlockExclusive() {
	if s.xref == nil {
		s.refMu.Unlock()
		return
	}
	if err := flock(s.xref.f, unix.LOCK_UN); err != nil {
		s.log.Warn("release exclusive reference lock", keyPath, s.xref.f.Name(), keyErr, err)
	}
	s.refMu.Unlock()
}

// bumpGen records that a reference was created (or a revision, tag or link
// removed): the in-process generation and the cross-process token both
// change. GC replans when they moved; the kept repository list is rebuilt
// (listing.go). The caller holds refRLock (or, in GC, the exclusive lock).
func (s *Store) bumpGen() {
	s.gen.Add(1)
	if err := s.xref.newToken(); err != nil {
		s.log.Warn("write reference token; a GC in another process may not see this write", keyErr, err)
	}
}

// refState is what GC compares before applying a plan.
type refState struct {
	gen   uint64
	token uint64
}

// refState reads the generation and the token.
func (s *Store) refState() (refState, error) {
	tok, err := s.xref.token()
	return refState{gen: s.gen.Load(), token: tok}, err
}
