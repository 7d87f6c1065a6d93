package blobstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

var errNotDir = syscall.ENOTDIR

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a power loss.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// mkdirAllDurable creates dir and any missing parents, fsyncing each parent
// that gained an entry.
func mkdirAllDurable(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s: %w", dir, errNotDir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent == dir {
		return err
	}
	if err := mkdirAllDurable(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // a concurrent creator won
		}
		return err
	}
	return syncDir(parent)
}

// writeFileAtomic replaces path with data: a temp file in root/tmp is
// written, (if durable) fsynced, given mtime, and renamed over path; the
// directory is then fsynced (if durable). Readers see the old or the new
// content, never a mix; a crash leaves only a temp file that Open removes.
func (s *Store) writeFileAtomic(path string, data []byte, mtime time.Time, durable bool) error {
	return writeFileAtomic(s.tmpDir(), path, data, mtime, durable)
}

// writeFileAtomic is Store.writeFileAtomic with its temp file in tmpDir.
func writeFileAtomic(tmpDir, path string, data []byte, mtime time.Time, durable bool) error {
	dir := filepath.Dir(path)
	if err := mkdirAllDurable(dir); err != nil {
		return err
	}
	f, err := os.CreateTemp(tmpDir, "meta-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if durable {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if durable {
		return syncDir(dir)
	}
	return nil
}

// removeDurable removes a file and fsyncs its directory. A missing file is
// reported as fs.ErrNotExist.
func removeDurable(path string) error {
	if err := os.Remove(path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// dirEmpty reports whether dir has no entries; a missing dir is empty.
func dirEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		if isNotExist(err) {
			return true, nil
		}
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return false, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return true, nil
}
