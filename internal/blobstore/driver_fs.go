package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/airlockdev/airlock/internal/storage"
)

// fsDriver is the Driver over a directory: objects are regular files under
// root, written through temp files in tmp (the owning Store's own temp
// directory) with the store's durable helpers: fsync of file and
// directory, rename into place. Times come from now (the Store's clock).
type fsDriver struct {
	root string
	tmp  func() string // the Store's temp directory
	now  func() time.Time
}

var (
	_ Driver  = (*fsDriver)(nil)
	_ mover   = (*fsDriver)(nil)
	_ toucher = (*fsDriver)(nil)
)

func (d *fsDriver) String() string { return "file://" + d.root }

// path maps a name to its file, refusing names that are not local.
func (d *fsDriver) path(name string) (string, error) {
	if err := storage.CheckName(name); err != nil {
		return "", err
	}
	return filepath.Join(d.root, filepath.FromSlash(name)), nil
}

func (d *fsDriver) Stat(_ context.Context, name string) (ObjectInfo, error) {
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

// Open returns the *os.File (sendfile); a blob removed by GC while open
// stays readable through it. A missing file is reported at once, whatever
// size says.
func (d *fsDriver) Open(_ context.Context, name string, _ int64) (io.ReadSeekCloser, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, notExist(err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("open %s: not a regular file", name)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (d *fsDriver) Put(_ context.Context, name string, data []byte) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	return writeFileAtomic(d.tmp(), p, data, d.now(), true)
}

// Create writes a temp file and hard-links it to the name: link(2) fails
// when the name exists, so exactly one of concurrent Creates wins.
func (d *fsDriver) Create(_ context.Context, name string, data []byte) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := mkdirAllDurable(filepath.Dir(p)); err != nil {
		return err
	}
	f, err := os.CreateTemp(d.tmp(), "create-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		t := d.now()
		err = os.Chtimes(tmp, t, t)
	}
	if err == nil {
		err = os.Link(tmp, p)
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

func (d *fsDriver) Touch(_ context.Context, name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	t := d.now()
	return notExist(os.Chtimes(p, t, t))
}

// Move renames src over dst (both durable).
func (d *fsDriver) Move(_ context.Context, src, dst string) error {
	sp, err := d.path(src)
	if err != nil {
		return err
	}
	dp, err := d.path(dst)
	if err != nil {
		return err
	}
	if err := mkdirAllDurable(filepath.Dir(dp)); err != nil {
		return err
	}
	t := d.now()
	if err := os.Chtimes(sp, t, t); err != nil {
		return notExist(err)
	}
	if err := os.Rename(sp, dp); err != nil {
		return notExist(err)
	}
	if err := syncDir(filepath.Dir(dp)); err != nil {
		return err
	}
	return syncDir(filepath.Dir(sp))
}

func (d *fsDriver) List(_ context.Context, prefix string, fn func(ObjectInfo) error) error {
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
			if isNotExist(err) {
				return nil // removed while listing
			}
			return err
		}
		if p == filepath.Join(d.root, dirTmp) || p == filepath.Join(d.root, lockFileName) {
			return fs.SkipDir // the store's own files, not objects
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

func (d *fsDriver) Delete(_ context.Context, name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	return notExist(removeDurable(p))
}

func (d *fsDriver) NewWriter(_ context.Context, name string) (storage.ObjectWriter, error) {
	dst, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(d.tmp(), "obj-*")
	if err != nil {
		return nil, err
	}
	return &fsObjectWriter{d: d, f: f, name: name, dst: dst}, nil
}

// fsObjectWriter writes a temp file and renames it into place on Commit.
type fsObjectWriter struct {
	d         *fsDriver
	f         *os.File
	name, dst string
	done      bool
}

func (w *fsObjectWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

// LocalPath is the temp file being written (readers may open it).
func (w *fsObjectWriter) LocalPath() string { return w.f.Name() }

func (w *fsObjectWriter) Commit() error {
	if w.done {
		return errors.New("commit object: writer already finished")
	}
	w.done = true
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = mkdirAllDurable(filepath.Dir(w.dst))
	}
	if err == nil {
		t := w.d.now()
		err = os.Chtimes(w.f.Name(), t, t)
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.dst)
	}
	if err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("commit object %s: %w", w.name, err)
	}
	return syncDir(filepath.Dir(w.dst))
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
