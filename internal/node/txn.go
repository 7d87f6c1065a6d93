package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// txn records what apply staged and changed, so a failure can undo it.
type txn struct {
	n       *Node
	temps   []string       // staged files not yet renamed
	dirs    []string       // directories apply created, outermost first
	undo    []func() error // run last to first on rollback
	backups []string       // backups written by this apply
}

// stage creates missing directories, writes every file to a temporary
// file next to its target and backs up files changed for the first time.
func (t *txn) stage(ops []*fileOp) error {
	for _, op := range ops {
		full := t.n.under(op.want.path)
		if err := t.mkdirAll(filepath.Dir(full)); err != nil {
			return err
		}
		if op.newBackup {
			b := t.n.under(op.rec.Backup)
			if err := t.mkdirAll(filepath.Dir(b)); err != nil {
				return err
			}
			if err := os.WriteFile(b, []byte(op.cur), 0o600); err != nil {
				return fmt.Errorf("backing up %s: %w", op.want.path, err)
			}
			t.backups = append(t.backups, b)
		}
		f, err := os.CreateTemp(filepath.Dir(full), ".airlock-*")
		if err != nil {
			return fmt.Errorf("staging %s: %w", op.want.path, err)
		}
		t.temps = append(t.temps, f.Name())
		op.tmp = f.Name()
		_, werr := f.WriteString(op.want.content)
		if err := errors.Join(werr, f.Close(), op.stagedMeta().set(f.Name())); err != nil {
			return fmt.Errorf("staging %s: %w", op.want.path, err)
		}
	}
	return nil
}

// mkdirAll creates dir and the parents it lacks, recording each.
func (t *txn) mkdirAll(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		missing = append([]string{d}, missing...)
		if d == filepath.Dir(d) {
			break
		}
	}
	for _, d := range missing {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
		t.dirs = append(t.dirs, d)
	}
	return nil
}

// commitFile renames a staged file into place; undo puts back what was
// there.
func (t *txn) commitFile(op *fileOp) error {
	full := t.n.under(op.want.path)
	if err := t.n.rename(op.tmp, full); err != nil {
		return fmt.Errorf("writing %s: %w", op.want.path, err)
	}
	t.temps = remove(t.temps, op.tmp)
	t.undo = append(t.undo, t.n.putBack(full, op.exists, op.cur, op.link, op.meta))
	return nil
}

// restoreFile undoes airlock's change to one file: removes what airlock
// created, relinks a symlink, or writes the backup back. A file already
// gone is fine.
func (t *txn) restoreFile(r FileRecord) error {
	full := t.n.under(r.Path)
	var link string
	if fi, err := os.Lstat(full); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		link, _ = os.Readlink(full)
	}
	meta, _ := metaOf(full)
	cur, exists, _ := readFile(full)
	if err := t.n.restore(r); err != nil {
		return err
	}
	t.undo = append(t.undo, t.n.putBack(full, exists, cur, link, meta))
	return nil
}

// restore puts one file back as it was before airlock.
func (n *Node) restore(r FileRecord) error {
	full := n.under(r.Path)
	switch {
	case r.Created:
		if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing %s: %w", r.Path, err)
		}
	case r.LinkTarget != "":
		if err := n.symlinkAtomic(full, r.LinkTarget, r.Owner); err != nil {
			return fmt.Errorf("restoring %s: %w", r.Path, err)
		}
	default:
		b, err := os.ReadFile(n.under(r.Backup))
		if err != nil {
			return fmt.Errorf("restoring %s: its backup: %w", r.Path, err)
		}
		if err := n.writeAtomic(full, b, recordMeta(r)); err != nil {
			return fmt.Errorf("restoring %s: %w", r.Path, err)
		}
	}
	return nil
}

// putBack returns an undo that makes full what it was: its content,
// mode and owner, or the symlink it was, or nothing.
func (n *Node) putBack(full string, existed bool, content, link string, meta fileMeta) func() error {
	return func() error {
		switch {
		case link != "":
			return n.symlinkAtomic(full, link, meta.owner)
		case existed:
			return n.writeAtomic(full, []byte(content), meta)
		}
		if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
}

// rollback undoes every committed step, last first, and removes what was
// staged. It returns the errors of undo steps that failed.
func (t *txn) rollback() error {
	var errs []error
	for i := len(t.undo) - 1; i >= 0; i-- {
		if err := t.undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	t.undo = nil
	for _, f := range t.temps {
		os.Remove(f)
	}
	for _, b := range t.backups {
		os.Remove(b)
	}
	for i := len(t.dirs) - 1; i >= 0; i-- {
		os.Remove(t.dirs[i]) // only when empty
	}
	return errors.Join(errs...)
}

// cleanup removes staged files left after a successful commit.
func (t *txn) cleanup() {
	for _, f := range t.temps {
		os.Remove(f)
	}
}

func remove(s []string, v string) []string {
	out := s[:0]
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}
