package blobstore

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"slices"
	"testing"

	"github.com/airlockdev/airlock/internal/oci"
)

// testDriver is the driver conformance check: every Driver (the
// filesystem's here, object storage's next) passes it.
func testDriver(t *testing.T, d Driver) {
	data := []byte("0123456789abcdefghij")

	if _, err := d.Stat("a/b/obj"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(missing) = %v, want fs.ErrNotExist", err)
	}
	if _, _, err := d.Get("a/b/obj"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get(missing) = %v, want fs.ErrNotExist", err)
	}
	if err := d.Delete("a/b/obj"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Delete(missing) = %v, want fs.ErrNotExist", err)
	}
	for _, bad := range []string{"", "../x", "/abs", "a/../b", "a//b"} {
		if err := d.Put(bad, data); err == nil {
			t.Errorf("Put(%q) = nil, want an error: not a clean relative name", bad)
		}
	}

	if err := d.Put("a/b/obj", data); err != nil {
		t.Fatalf("Put = %v", err)
	}
	if info, err := d.Stat("a/b/obj"); err != nil || info.Size != int64(len(data)) || info.Name != "a/b/obj" {
		t.Errorf("Stat = %+v, %v, want a/b/obj of %d bytes", info, err, len(data))
	}
	r, info, err := d.Get("a/b/obj")
	if err != nil {
		t.Fatalf("Get = %v", err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, data) || info.Size != int64(len(data)) {
		t.Errorf("Get = %q (size %d), want %q", got, info.Size, data)
	}
	for _, c := range []struct {
		off, n int64
		want   string
	}{{0, 5, "01234"}, {10, -1, "abcdefghij"}, {15, 100, "fghij"}, {25, 3, ""}} {
		rc, err := d.GetRange("a/b/obj", c.off, c.n)
		if err != nil {
			t.Fatalf("GetRange(%d, %d) = %v", c.off, c.n, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != c.want {
			t.Errorf("GetRange(%d, %d) = %q, want %q", c.off, c.n, got, c.want)
		}
	}
	if err := d.Put("a/b/obj", data[:3]); err != nil {
		t.Fatalf("Put(replace) = %v", err)
	}
	if info, err := d.Stat("a/b/obj"); err != nil || info.Size != 3 {
		t.Errorf("Stat after replace = %+v, %v, want 3 bytes", info, err)
	}

	// A writer's bytes are invisible until Commit; Abort leaves nothing.
	w, err := d.NewWriter()
	if err != nil {
		t.Fatalf("NewWriter = %v", err)
	}
	w.Write(data)
	if _, err := d.Stat("a/c/new"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat before Commit = %v, want fs.ErrNotExist", err)
	}
	if err := w.Commit("a/c/new"); err != nil {
		t.Fatalf("Commit = %v", err)
	}
	w.Abort() // no-op after Commit
	if info, err := d.Stat("a/c/new"); err != nil || info.Size != int64(len(data)) {
		t.Errorf("Stat after Commit = %+v, %v, want %d bytes", info, err, len(data))
	}
	w2, err := d.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	w2.Write(data)
	w2.Abort()
	if err := w2.Commit("a/c/aborted"); err == nil {
		t.Errorf("Commit after Abort = nil, want an error")
	}

	var names []string
	if err := d.List("a", func(o ObjectInfo) error { names = append(names, o.Name); return nil }); err != nil {
		t.Fatalf("List = %v", err)
	}
	slices.Sort(names)
	if want := []string{"a/b/obj", "a/c/new"}; !slices.Equal(names, want) {
		t.Errorf("List(a) = %q, want %q", names, want)
	}
	if err := d.List("none", func(ObjectInfo) error { t.Error("List(none) called fn"); return nil }); err != nil {
		t.Errorf("List(none) = %v, want nil", err)
	}

	if err := d.Delete("a/b/obj"); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	if _, err := d.Stat("a/b/obj"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(deleted) = %v, want fs.ErrNotExist", err)
	}
	// A name whose parent is a file is missing too, not a failure.
	if _, err := d.Stat("a/c/new/below"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(below a file) = %v, want fs.ErrNotExist", err)
	}
}

func TestFSDriver(t *testing.T) {
	root, tmp := t.TempDir(), t.TempDir()
	testDriver(t, &fsDriver{root: root, tmp: func() string { return tmp }})
}

// The store's blobs are the driver's objects under blobName.
func TestStoreBlobsThroughDriver(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := []byte("through the driver")
	d := oci.SHA256.FromBytes(b)
	if _, err := s.Put(d, bytes.NewReader(b), -1); err != nil {
		t.Fatal(err)
	}
	if info, err := s.drv.Stat(blobName(d)); err != nil || info.Size != int64(len(b)) {
		t.Errorf("drv.Stat(blobName) = %+v, %v, want %d bytes", info, err, len(b))
	}
}
