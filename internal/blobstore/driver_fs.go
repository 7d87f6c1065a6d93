package blobstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

// fsDriver is the Driver over a directory: objects are regular files under
// root, written through temp files in tmp (the owning Store's own temp
// directory) with the store's durable helpers: fsync of file and
// directory, rename into place.
type fsDriver struct {
	root string
	tmp  func() string // the Store's temp directory
}

var _ Driver = (*fsDriver)(nil)

// path maps a name to its file, refusing names that are not local.
func (d *fsDriver) path(name string) (string, error) {
	if name == "" || !filepath.IsLocal(filepath.FromSlash(name)) || path.Clean(name) != name {
		return "", fmt.Errorf("object name %q: not a clean relative path", name)
	}
	return filepath.Join(d.root, filepath.FromSlash(name)), nil
}

func (d *fsDriver) Stat(name string) (ObjectInfo, error) {
	p, err := d.path(name)
	if err != nil {
		return ObjectInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return ObjectInfo{}, notExist(err)
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, fmt.Errorf("stat %s: not a regular file", name)
	}
	return ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (d *fsDriver) Get(name string) (io.ReadSeekCloser, ObjectInfo, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, ObjectInfo{}, notExist(err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("get %s: not a regular file", name)
	}
	if err != nil {
		f.Close()
		return nil, ObjectInfo{}, err
	}
	return f, ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (d *fsDriver) GetRange(name string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", name, offset)
	}
	r, _, err := d.Get(name)
	if err != nil {
		return nil, err
	}
	if _, err := r.Seek(offset, io.SeekStart); err != nil {
		r.Close()
		return nil, err
	}
	if length < 0 {
		return r, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(r, length), r}, nil
}

func (d *fsDriver) Put(name string, data []byte) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	return writeFileAtomic(d.tmp(), p, data, time.Now(), true)
}

func (d *fsDriver) List(prefix string, fn func(ObjectInfo) error) error {
	dir := d.root
	if prefix != "" {
		p, err := d.path(prefix)
		if err != nil {
			return err
		}
		dir = p
	}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && isNotExist(err) {
				return fs.SkipAll
			}
			return err
		}
		if !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			if isNotExist(err) {
				return nil // removed while listing
			}
			return err
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		return fn(ObjectInfo{Name: filepath.ToSlash(rel), Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if errors.Is(err, fs.SkipAll) {
		return nil
	}
	return err
}

func (d *fsDriver) Delete(name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	return notExist(removeDurable(p))
}

func (d *fsDriver) NewWriter() (ObjectWriter, error) {
	f, err := os.CreateTemp(d.tmp(), "obj-*")
	if err != nil {
		return nil, err
	}
	return &fsObjectWriter{d: d, f: f}, nil
}

// fsObjectWriter writes a temp file and renames it into place on Commit.
type fsObjectWriter struct {
	d    *fsDriver
	f    *os.File
	done bool
}

func (w *fsObjectWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

func (w *fsObjectWriter) Commit(name string) error {
	if w.done {
		return errors.New("commit object: writer already finished")
	}
	w.done = true
	dst, err := w.d.path(name)
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = mkdirAllDurable(filepath.Dir(dst))
	}
	if err == nil {
		err = os.Rename(w.f.Name(), dst)
	}
	if err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("commit object %s: %w", name, err)
	}
	return syncDir(filepath.Dir(dst))
}

func (w *fsObjectWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// notExist makes a missing parent directory (ENOTDIR) read as
// fs.ErrNotExist too, as the Driver contract promises.
func notExist(err error) error {
	if err != nil && !errors.Is(err, fs.ErrNotExist) && isNotExist(err) {
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	return err
}

// blobName is blob d's object name (blobPath relative to the root).
func blobName(d oci.Digest) string {
	h := d.Hex()
	return strings.Join([]string{dirBlobs, string(d.Algorithm()), h[:2], h}, "/")
}
