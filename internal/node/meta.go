package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Owner is a file's numeric owner and group.
type Owner struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
}

// fileMeta is what apply, its rollback and reset keep of a file besides
// its content: permission bits (with setuid, setgid and sticky) and owner.
// A file holding credentials (a containerd config at 0600) must come back
// exactly as it was, never wider. Owner is nil when unknown (state written
// by an older airlock): the file then keeps the owner the write gives it.
type fileMeta struct {
	mode  fs.FileMode
	owner *Owner
	known bool // read from a file or a record, not the zero value
}

// defaultMeta is what a file airlock creates gets: 0644, the owner of the
// process (root).
var defaultMeta = fileMeta{mode: 0o644, known: true}

const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// metaOf returns the mode and owner of path (not following a symlink).
func metaOf(path string) (fileMeta, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return fileMeta{}, err
	}
	m := fileMeta{mode: fi.Mode() & modeBits, known: true}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		m.owner = &Owner{UID: int(st.Uid), GID: int(st.Gid)}
	}
	return m, nil
}

// recordMeta returns the metadata a FileRecord keeps (defaultMeta when it
// keeps none).
func recordMeta(r FileRecord) fileMeta {
	if r.Mode == 0 && r.Owner == nil {
		return defaultMeta
	}
	return fileMeta{mode: r.Mode, owner: r.Owner, known: true}
}

// set gives path m's mode and owner. Mode goes after owner: chown clears
// setuid and setgid.
func (m fileMeta) set(path string) error {
	if !m.known {
		m = defaultMeta
	}
	if m.owner != nil {
		if err := os.Lchown(path, m.owner.UID, m.owner.GID); err != nil {
			return err
		}
	}
	return os.Chmod(path, m.mode)
}

// writeAtomic writes b to path through a temporary file that has m's mode
// and owner before it is renamed into place, so the file is never visible
// with other content or wider permissions.
func (n *Node) writeAtomic(path string, b []byte, m fileMeta) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".airlock-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, m.set(f.Name())); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := n.rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// symlinkAtomic makes path a symlink to target, owned by owner when known.
func (n *Node) symlinkAtomic(path, target string, owner *Owner) error {
	tmp := filepath.Join(filepath.Dir(path), ".airlock-link-"+filepath.Base(path))
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if owner != nil {
		if err := os.Lchown(tmp, owner.UID, owner.GID); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("owner of symlink: %w", err)
		}
	}
	if err := n.rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// stagedMeta is the mode and owner apply gives the file it writes: those
// of the regular file it replaces, else those recorded when airlock first
// replaced it, else defaultMeta (a new file, or one that was a symlink).
func (op *fileOp) stagedMeta() fileMeta {
	if op.exists && op.link == "" && op.meta.known {
		return op.meta
	}
	if op.rec.Backup != "" {
		return recordMeta(op.rec)
	}
	return defaultMeta
}
