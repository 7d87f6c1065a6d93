package blobstore

import (
	"context"
	"errors"
	"io/fs"
	"strings"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// The store's few ways of using its Driver. Drivers bound each request
// themselves (a storage that does not answer fails within its timeouts),
// so the store passes no deadline of its own.

func (s *Store) ctx() context.Context { return context.Background() }

// readSmall reads a whole object of at most limit bytes.
func (s *Store) readSmall(name string, limit int64) ([]byte, error) {
	return storage.ReadSmall(s.ctx(), s.drv, name, limit)
}

func (s *Store) statObj(name string) (ObjectInfo, error) { return s.drv.Stat(s.ctx(), name) }

func (s *Store) putObj(name string, data []byte) error { return s.drv.Put(s.ctx(), name, data) }

func (s *Store) deleteObj(name string) error { return s.drv.Delete(s.ctx(), name) }

// exists reports whether the object is there.
func (s *Store) exists(name string) (bool, error) {
	_, err := s.statObj(name)
	if err == nil {
		return true, nil
	}
	if isNotExist(err) {
		return false, nil
	}
	return false, err
}

// touchObj refreshes an object's time: utimes on the file system, a
// rewrite of its (small) content on object storage.
func (s *Store) touchObj(name string, data []byte) error {
	if t, ok := s.drv.(toucher); ok {
		return t.Touch(s.ctx(), name)
	}
	return s.putObj(name, data)
}

// list calls fn for every object under prefix.
func (s *Store) list(prefix string, fn func(ObjectInfo) error) error {
	return s.drv.List(s.ctx(), prefix, fn)
}

// errStop ends a listing early.
var errStop = errors.New("stop listing")

// any reports whether some object under prefix satisfies ok (nil: any).
func (s *Store) anyObj(prefix string, ok func(ObjectInfo) bool) (bool, error) {
	found := false
	err := s.list(prefix, func(o ObjectInfo) error {
		if ok == nil || ok(o) {
			found = true
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return false, err
	}
	return found, nil
}

// digestUnder parses name as <prefix>/<alg>/<hex>, the layout of blob
// links and revisions; ok is false for anything else.
func digestUnder(prefix, name string) (oci.Digest, bool) {
	rest, ok := strings.CutPrefix(name, prefix+"/")
	if !ok {
		return "", false
	}
	alg, hex, ok := strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	d, err := oci.ParseDigest(alg + ":" + hex)
	return d, err == nil
}

// isNotExist reports a missing object, including a file path whose parent
// is a file (ENOTDIR).
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir)
}
