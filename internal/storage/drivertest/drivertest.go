// Package drivertest is the conformance check every storage.Driver passes:
// the file system's, Azure Blob Storage's (on Azurite) and S3's (on
// versitygw). Only tests import it.
package drivertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/storage"
)

// Run checks the Driver contract. newDriver returns an empty driver (a
// fresh directory, container or bucket) for each subtest.
func Run(t *testing.T, newDriver func(t *testing.T) storage.Driver) {
	t.Run("Missing", func(t *testing.T) { testMissing(t, newDriver(t)) })
	t.Run("BadNames", func(t *testing.T) { testBadNames(t, newDriver(t)) })
	t.Run("PutOpenRange", func(t *testing.T) { testPutOpenRange(t, newDriver(t)) })
	t.Run("Create", func(t *testing.T) { testCreate(t, newDriver(t)) })
	t.Run("Writer", func(t *testing.T) { testWriter(t, newDriver(t)) })
	t.Run("LargeWriter", func(t *testing.T) { testLargeWriter(t, newDriver(t)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, newDriver(t)) })
	t.Run("List", func(t *testing.T) { testList(t, newDriver(t)) })
}

var ctx = context.Background()

func readAll(t *testing.T, d storage.Driver, name string, size int64) []byte {
	t.Helper()
	r, err := d.Open(ctx, name, size)
	if err != nil {
		t.Fatalf("Open(%s, %d) = %v", name, size, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func testMissing(t *testing.T, d storage.Driver) {
	if _, err := d.Stat(ctx, "a/b/obj"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(missing) = %v, want fs.ErrNotExist", err)
	}
	if _, err := d.Open(ctx, "a/b/obj", -1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing, -1) = %v, want fs.ErrNotExist", err)
	}
	// With a size an object driver asks nothing until the first Read, so
	// the miss shows there; the file system sees it at Open.
	r, err := d.Open(ctx, "a/b/obj", 10)
	if err == nil {
		_, err = r.Read(make([]byte, 4))
		r.Close()
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing, 10) then Read = %v, want fs.ErrNotExist", err)
	}
	if err := d.Delete(ctx, "a/b/obj"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Delete(missing) = %v, want fs.ErrNotExist", err)
	}
	if d.String() == "" {
		t.Error("String() is empty, want the storage's name")
	}
}

func testBadNames(t *testing.T, d storage.Driver) {
	for _, bad := range []string{"", "../x", "/abs", "a/../b", "a//b", "a/", "./a"} {
		if err := d.Put(ctx, bad, []byte("x")); err == nil {
			t.Errorf("Put(%q) = nil, want an error: not a clean relative name", bad)
		}
		if _, err := d.Stat(ctx, bad); err == nil {
			t.Errorf("Stat(%q) = nil, want an error", bad)
		}
		if _, err := d.NewWriter(ctx, bad); err == nil {
			t.Errorf("NewWriter(%q) = nil, want an error", bad)
		}
	}
}

func testPutOpenRange(t *testing.T, d storage.Driver) {
	data := []byte("0123456789abcdefghij")
	name := "repos/my-org/app.v2/_manifests/tags/v1.0_x-y"
	before := time.Now().Add(-time.Minute)
	if err := d.Put(ctx, name, data); err != nil {
		t.Fatalf("Put = %v", err)
	}
	info, err := d.Stat(ctx, name)
	if err != nil || info.Size != int64(len(data)) || info.Name != name {
		t.Errorf("Stat = %+v, %v, want %s of %d bytes", info, err, name, len(data))
	}
	if info.ModTime.Before(before) || info.ModTime.After(time.Now().Add(time.Minute)) {
		t.Errorf("Stat ModTime = %v, want about now", info.ModTime)
	}
	if got := readAll(t, d, name, -1); !bytes.Equal(got, data) {
		t.Errorf("Open(-1) read %q, want %q", got, data)
	}
	if got := readAll(t, d, name, int64(len(data))); !bytes.Equal(got, data) {
		t.Errorf("Open(size) read %q, want %q", got, data)
	}
	r, err := d.Open(ctx, name, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		off  int64
		n    int
		want string
	}{{10, 5, "abcde"}, {0, 3, "012"}, {15, 100, "fghij"}, {3, 2, "34"}} {
		if _, err := r.Seek(c.off, io.SeekStart); err != nil {
			t.Fatalf("Seek(%d) = %v", c.off, err)
		}
		got, err := io.ReadAll(io.LimitReader(r, int64(c.n)))
		if err != nil || string(got) != c.want {
			t.Errorf("read %d at %d = %q, %v, want %q", c.n, c.off, got, err, c.want)
		}
	}
	if end, err := r.Seek(0, io.SeekEnd); err != nil || end != int64(len(data)) {
		t.Errorf("Seek(0, End) = %d, %v, want %d", end, err, len(data))
	}
	r.Close()

	if err := d.Put(ctx, name, data[:3]); err != nil {
		t.Fatalf("Put(replace) = %v", err)
	}
	if info, err := d.Stat(ctx, name); err != nil || info.Size != 3 {
		t.Errorf("Stat after replace = %+v, %v, want 3 bytes", info, err)
	}
	if err := d.Put(ctx, "empty", nil); err != nil {
		t.Fatalf("Put(empty) = %v", err)
	}
	if got := readAll(t, d, "empty", -1); len(got) != 0 {
		t.Errorf("empty object read %q", got)
	}
	if err := d.Delete(ctx, name); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	if _, err := d.Stat(ctx, name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(deleted) = %v, want fs.ErrNotExist", err)
	}
	if _, err := d.Stat(ctx, "empty/below"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(below an object) = %v, want fs.ErrNotExist", err)
	}
}

func testCreate(t *testing.T, d storage.Driver) {
	if err := d.Create(ctx, "u/1/seg", []byte("first")); err != nil {
		t.Fatalf("Create = %v", err)
	}
	if err := d.Create(ctx, "u/1/seg", []byte("second")); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create(existing) = %v, want fs.ErrExist", err)
	}
	if got := readAll(t, d, "u/1/seg", -1); string(got) != "first" {
		t.Errorf("after a refused Create the object is %q, want %q", got, "first")
	}
	// Of several concurrent Creates exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := d.Create(ctx, "u/1/race", []byte{byte('a' + i)})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won++
			} else if !errors.Is(err, fs.ErrExist) {
				t.Errorf("concurrent Create = %v, want nil or fs.ErrExist", err)
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d concurrent Creates of one name succeeded, want exactly 1", won)
	}
}

func testWriter(t *testing.T, d storage.Driver) {
	data := []byte("written through a writer")
	w, err := d.NewWriter(ctx, "blobs/x/new")
	if err != nil {
		t.Fatalf("NewWriter = %v", err)
	}
	w.Write(data[:5])
	w.Write(data[5:])
	if _, err := d.Stat(ctx, "blobs/x/new"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat before Commit = %v, want fs.ErrNotExist", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit = %v", err)
	}
	w.Abort() // no-op after Commit
	if got := readAll(t, d, "blobs/x/new", -1); !bytes.Equal(got, data) {
		t.Errorf("committed object = %q, want %q", got, data)
	}

	w2, err := d.NewWriter(ctx, "blobs/x/aborted")
	if err != nil {
		t.Fatal(err)
	}
	w2.Write(data)
	w2.Abort()
	if err := w2.Commit(); err == nil {
		t.Errorf("Commit after Abort = nil, want an error")
	}
	if _, err := d.Stat(ctx, "blobs/x/aborted"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(aborted) = %v, want fs.ErrNotExist", err)
	}

	w3, err := d.NewWriter(ctx, "blobs/x/empty")
	if err != nil {
		t.Fatal(err)
	}
	if err := w3.Commit(); err != nil {
		t.Fatalf("Commit(empty) = %v", err)
	}
	if info, err := d.Stat(ctx, "blobs/x/empty"); err != nil || info.Size != 0 {
		t.Errorf("Stat(empty) = %+v, %v, want 0 bytes", info, err)
	}

	var names []string
	d.List(ctx, "blobs", func(o storage.ObjectInfo) error { names = append(names, o.Name); return nil })
	slices.Sort(names)
	if want := []string{"blobs/x/empty", "blobs/x/new"}; !slices.Equal(names, want) {
		t.Errorf("List(blobs) = %q, want %q (an aborted writer leaves nothing listed)", names, want)
	}
}

// LargeSize spans several blocks or parts (drivers stage 8 MiB or less).
const LargeSize = 21<<20 + 3

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func testLargeWriter(t *testing.T, d storage.Driver) {
	data := random(LargeSize)
	w, err := d.NewWriter(ctx, "blobs/large")
	if err != nil {
		t.Fatal(err)
	}
	// Writes of odd sizes, as a network stream gives them.
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 777_777)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatalf("Write = %v", err)
		}
		rest = rest[n:]
	}
	if _, err := d.Stat(ctx, "blobs/large"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat before Commit = %v, want fs.ErrNotExist", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit = %v", err)
	}
	if got := readAll(t, d, "blobs/large", -1); !bytes.Equal(got, data) {
		t.Fatalf("large object read back differs (%d bytes, want %d)", len(got), len(data))
	}
	r, _ := d.Open(ctx, "blobs/large", int64(len(data)))
	defer r.Close()
	off := int64(8<<20 - 100) // across a block boundary
	r.Seek(off, io.SeekStart)
	got := make([]byte, 300)
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, data[off:off+300]) {
		t.Errorf("ranged read across a block boundary differs: %v", err)
	}

	// An aborted large writer leaves nothing visible.
	w2, _ := d.NewWriter(ctx, "blobs/large-aborted")
	w2.Write(data)
	w2.Abort()
	if _, err := d.Stat(ctx, "blobs/large-aborted"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(aborted large) = %v, want fs.ErrNotExist", err)
	}
}

func testConcurrentWriters(t *testing.T, d storage.Driver) {
	for _, size := range []int{1 << 10, 9 << 20} {
		data := random(size)
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w, err := d.NewWriter(ctx, "blobs/same")
				if err != nil {
					t.Error(err)
					return
				}
				for rest := data; len(rest) > 0; {
					n := min(len(rest), 1<<20)
					w.Write(rest[:n])
					rest = rest[n:]
				}
				err = w.Commit()
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					ok++
				} else if !errors.Is(err, storage.ErrCommitRaced) {
					t.Errorf("concurrent Commit = %v, want nil or storage.ErrCommitRaced", err)
				}
			}()
		}
		wg.Wait()
		if ok == 0 {
			t.Errorf("no concurrent Commit of %d bytes succeeded", size)
		}
		if got := readAll(t, d, "blobs/same", -1); !bytes.Equal(got, data) {
			t.Errorf("object after concurrent writers of %d bytes differs (%d bytes)", size, len(got))
		}
	}
}

func testList(t *testing.T, d storage.Driver) {
	for _, n := range []string{"a/b/obj", "a/c/new", "ab/x", "a/b/c/deep", "top"} {
		if err := d.Put(ctx, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	list := func(prefix string) []string {
		var names []string
		err := d.List(ctx, prefix, func(o storage.ObjectInfo) error {
			if o.Size != int64(len(o.Name)) {
				t.Errorf("List: %s has size %d, want %d", o.Name, o.Size, len(o.Name))
			}
			names = append(names, o.Name)
			return nil
		})
		if err != nil {
			t.Fatalf("List(%q) = %v", prefix, err)
		}
		slices.Sort(names)
		return names
	}
	if got, want := list("a"), []string{"a/b/c/deep", "a/b/obj", "a/c/new"}; !slices.Equal(got, want) {
		t.Errorf("List(a) = %q, want %q (a prefix is a directory: not ab/x)", got, want)
	}
	if got, want := list(""), []string{"a/b/c/deep", "a/b/obj", "a/c/new", "ab/x", "top"}; !slices.Equal(got, want) {
		t.Errorf("List(\"\") = %q, want %q", got, want)
	}
	if got := list("none"); len(got) != 0 {
		t.Errorf("List(none) = %q, want nothing", got)
	}
	stop := errors.New("stop")
	if err := d.List(ctx, "a", func(storage.ObjectInfo) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("List with fn error = %v, want that error", err)
	}
}
