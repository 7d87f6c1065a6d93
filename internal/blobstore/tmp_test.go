package blobstore

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestOpenCleansTmpOfWritersThatAreGone: Open removes the temp directory of
// a Store whose process died (its lock released) and loose entries older
// than looseTmpAge; it keeps a live Store's directory and young loose
// entries (which a release before owner directories may still be writing).
func TestOpenCleansTmpOfWritersThatAreGone(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	dead := openStore(t, root, Options{})
	live := openStore(t, root, Options{})
	for _, s := range []*Store{dead, live} {
		if err := os.WriteFile(filepath.Join(s.tmpDir(), "blob-1"), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(s.tmpDir(), "upload-1", "x"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	dead.tmpLock.Close() // what the kernel does when the process dies

	oldLoose := filepath.Join(root, dirTmp, "blob-old")
	youngLoose := filepath.Join(root, dirTmp, "fill-young")
	for _, p := range []string{oldLoose, youngLoose} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * looseTmpAge)
	if err := os.Chtimes(oldLoose, old, old); err != nil {
		t.Fatal(err)
	}

	s := openStore(t, root, Options{})
	got := dirEntries(t, filepath.Join(root, dirTmp))
	want := []string{filepath.Base(live.tmpDir()), filepath.Base(s.tmpDir()), "fill-young"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("tmp after Open = %v, want %v (the dead Store's directory and the old loose file removed)", got, want)
	}
	if got := dirEntries(t, live.tmpDir()); !slices.Equal(got, []string{"blob-1", "upload-1"}) {
		t.Errorf("live Store's temp directory = %v, want its files kept", got)
	}
	if n, err := s.OtherUsers(); err != nil || n != 1 {
		t.Errorf("OtherUsers() = %d, %v; want 1 (the live Store)", n, err)
	}
}

// TestCloseReleasesTmp: Close removes the Store's own temp directory; a
// Store opened afterwards sees no other user.
func TestCloseReleasesTmp(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	a := openStore(t, root, Options{})
	dir := a.tmpDir()
	if err := a.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close() = %v, want nil", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temp directory after Close: %v, want it gone", err)
	}
	b := openStore(t, root, Options{})
	if n, err := b.OtherUsers(); err != nil || n != 0 {
		t.Errorf("OtherUsers() after the only other Store closed = %d, %v; want 0", n, err)
	}
}
