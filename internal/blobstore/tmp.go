package blobstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Temp files are owned. Each open Store claims one directory
// root/tmp/<tmpOwnerPrefix><pid>-<random> and holds an exclusive flock on it
// until Close or the process exits; every temp file and staging directory
// the Store makes lives in it. Cleanup (Open and PurgeUploads, in any
// process) removes only owner directories whose flock it can take, that is
// whose owner is gone, so a running server's fills, pushes and metadata
// writes are never pulled from under it by `airlock registry gc`, a second
// server on the same root, or a restart that overlaps the old process.

// tmpOwnerPrefix starts the name of every owner directory in root/tmp.
const tmpOwnerPrefix = "s-"

// looseTmpAge: entries directly in root/tmp (left by a release that wrote
// temp files there, before owner directories) are removed once unmodified
// for this long; a younger one may belong to such a release still running.
const looseTmpAge = time.Hour

// claimTmpAttempts bounds the retries of claimTmp (each retry means a
// cleaner took the fresh directory between its creation and its lock).
const claimTmpAttempts = 8

// tmpRoot is root/tmp; tmpDir is this Store's own directory in it.
func (s *Store) tmpRoot() string { return filepath.Join(s.root, dirTmp) }
func (s *Store) tmpDir() string  { return s.tmp }

// TempDir is this Store's own local directory for temp files (removed
// with it): where a cache fill that is not written to the storage (a
// blob streamed from another replica) keeps its bytes.
func (s *Store) TempDir() string { return s.tmp }

// claimTmp creates this Store's owner directory and locks it.
func (s *Store) claimTmp() error {
	for range claimTmpAttempts {
		var raw [4]byte
		rand.Read(raw[:])
		dir := filepath.Join(s.tmpRoot(), tmpOwnerPrefix+strconv.Itoa(os.Getpid())+"-"+hex.EncodeToString(raw[:]))
		if err := os.Mkdir(dir, 0o700); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			return err
		}
		f, busy, err := tryLockFile(dir)
		if busy || isNotExist(err) {
			continue // a cleaner found it unlocked and is removing it
		}
		if err != nil {
			return err
		}
		// A cleaner may also have locked, removed and released it between
		// the mkdir and our lock: then the path is gone or another inode.
		held, err1 := f.Stat()
		now, err2 := os.Stat(dir)
		if err1 != nil || err2 != nil || !os.SameFile(held, now) {
			f.Close()
			continue
		}
		s.tmp, s.tmpLock = dir, f
		return nil
	}
	return fmt.Errorf("claim a temp directory in %s: removed by a concurrent cleanup %d times", s.tmpRoot(), claimTmpAttempts)
}

// tmpScan is what a pass over root/tmp found.
type tmpScan struct {
	removed int // entries removed (dead owners' directories, old loose entries)
	live    int // owner directories of other open Stores, left alone
}

// cleanTmp removes from root/tmp what no live Store owns: owner
// directories whose lock it can take, and loose entries older than
// looseTmpAge. Its own directory and live owners' are left alone.
func (s *Store) cleanTmp() (tmpScan, error) { return s.scanTmp(true) }

// scanTmp walks root/tmp; with remove it deletes what is dead.
func (s *Store) scanTmp(remove bool) (tmpScan, error) {
	var sc tmpScan
	entries, err := os.ReadDir(s.tmpRoot())
	if err != nil {
		return sc, err
	}
	cutoff := time.Now().Add(-looseTmpAge) // file times come from the kernel clock
	var errs []error
	for _, e := range entries {
		p := filepath.Join(s.tmpRoot(), e.Name())
		if p == s.tmp {
			continue
		}
		if e.IsDir() && strings.HasPrefix(e.Name(), tmpOwnerPrefix) {
			f, busy, err := tryLockFile(p)
			switch {
			case busy:
				sc.live++
			case isNotExist(err):
			case err != nil:
				errs = append(errs, err)
			default:
				if remove {
					if err := os.RemoveAll(p); err != nil {
						errs = append(errs, err)
					} else {
						sc.removed++
					}
				}
				f.Close()
			}
			continue
		}
		if !remove {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.ModTime().After(cutoff) {
			continue // gone meanwhile, or possibly still being written
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		} else {
			sc.removed++
		}
	}
	return sc, errors.Join(errs...)
}

// OtherUsers returns how many other open Stores (in this or another
// process) use this root right now: each holds its temp directory locked.
func (s *Store) OtherUsers() (int, error) {
	sc, err := s.scanTmp(false)
	if err != nil {
		return sc.live, fmt.Errorf("look for other users of %s: %w", s.root, err)
	}
	return sc.live, nil
}

// Close removes this Store's temp directory and releases its locks. Call
// it once every operation on the Store has returned; the Store must not be
// used afterwards. Close is optional: when a process exits its locks go
// with it, and the next Open or PurgeUploads on the root removes what it
// left. Closing twice is a no-op.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.lc != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.lc.close(ctx)
			cancel()
		}
		err = os.RemoveAll(s.tmp)
		if s.tmpLock != nil {
			if cerr := s.tmpLock.Close(); err == nil {
				err = cerr
			}
		}
		if s.xref != nil {
			if cerr := s.xref.f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			err = fmt.Errorf("close blob store %s: %w", s.root, err)
		}
	})
	return err
}

// scratchPrefix starts the name of each object-storage Store's own scratch
// directory; like the file system's temp directories, each is flock'd by
// its owner for as long as the Store is open.
const scratchPrefix = "airlock-store-"

// claimScratch creates and locks this Store's scratch directory.
func claimScratch(scratch string) (string, *os.File, error) {
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp(scratch, scratchPrefix+"*")
	if err != nil {
		return "", nil, err
	}
	f, busy, err := tryLockFile(dir)
	if err == nil && busy {
		err = fmt.Errorf("%s: locked by another store", dir)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, f, nil
}

// cleanScratch removes the scratch directories under scratch whose owner
// is gone (their lock is free): temp files of fills a crash cut off.
func cleanScratch(scratch, own string) int {
	ents, err := os.ReadDir(scratch)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		p := filepath.Join(scratch, e.Name())
		if !e.IsDir() || !strings.HasPrefix(e.Name(), scratchPrefix) || p == own {
			continue
		}
		f, busy, err := tryLockFile(p)
		if busy || err != nil {
			continue
		}
		if os.RemoveAll(p) == nil {
			n++
		}
		f.Close()
	}
	return n
}
