package blobstore

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

func TestChunkedUpload(t *testing.T) {
	for _, alg := range []oci.Algorithm{oci.SHA256, oci.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			s := newStore(t)
			b := randBytes(3, 2<<20+5)
			d := alg.FromBytes(b)
			u, err := s.NewUpload()
			if err != nil {
				t.Fatal(err)
			}
			if !validUploadID(u.ID()) {
				t.Fatalf("NewUpload().ID() = %q, want 32 lowercase hex", u.ID())
			}
			var off int64
			for _, n := range []int{1, 1 << 20, 0, 1<<20 + 4} {
				got, err := u.Append(off, bytes.NewReader(b[off:off+int64(n)]), -1)
				if err != nil || got != off+int64(n) {
					t.Fatalf("Append(%d, %d bytes) = %d, %v, want %d, nil", off, n, got, err, off+int64(n))
				}
				off += int64(n)
				if u.Size() != off {
					t.Fatalf("Size() = %d, want %d", u.Size(), off)
				}
			}
			size, err := u.Commit("lib/app", d)
			if err != nil || size != int64(len(b)) {
				t.Fatalf("Commit = %d, %v, want %d, nil", size, err, len(b))
			}
			if got := readBlob(t, s, d); !bytes.Equal(got, b) {
				t.Fatal("committed blob differs")
			}
			if _, err := s.BlobLinked("lib/app", d); err != nil {
				t.Fatalf("BlobLinked after Commit = %v", err)
			}
			if _, err := s.Upload(u.ID()); !errors.Is(err, ErrUploadUnknown) {
				t.Fatalf("Upload(id) after Commit = %v, want ErrUploadUnknown", err)
			}
			if _, err := u.Append(size, bytes.NewReader(nil), -1); !errors.Is(err, ErrUploadUnknown) {
				t.Fatalf("Append after Commit = %v, want ErrUploadUnknown", err)
			}
			if got := dirEntries(t, s.uploadsDir()); len(got) != 0 {
				t.Fatalf("uploads after Commit = %v, want empty", got)
			}
		})
	}
}

func TestAppendWrongOffset(t *testing.T) {
	s := newStore(t)
	u, _ := s.NewUpload()
	if _, err := u.Append(0, bytes.NewReader([]byte("hello")), -1); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 4, 6, -1} {
		if _, err := u.Append(off, bytes.NewReader([]byte("x")), -1); !errors.Is(err, ErrRangeInvalid) {
			t.Errorf("Append(%d) on a 5-byte upload = %v, want ErrRangeInvalid", off, err)
		}
	}
	if u.Size() != 5 {
		t.Fatalf("Size() = %d, want 5", u.Size())
	}
}

// TestFailedAppendLeavesUploadUnchanged: a reader error or an oversize chunk
// leaves size, file and running hash as they were, so the upload can go on
// and commit correctly.
func TestFailedAppendLeavesUploadUnchanged(t *testing.T) {
	b := randBytes(11, 300_000)
	tests := []struct {
		name    string
		r       io.Reader
		max     int64
		wantErr error
	}{
		{"reader fails midway", &errReader{data: randBytes(12, 150_000), err: io.ErrUnexpectedEOF}, -1, io.ErrUnexpectedEOF},
		{"more than maxBytes", bytes.NewReader(b[100_000:]), 1000, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			u, _ := s.NewUpload()
			if _, err := u.Append(0, bytes.NewReader(b[:100_000]), -1); err != nil {
				t.Fatal(err)
			}
			got, err := u.Append(100_000, tt.r, tt.max)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Append = %v, want %v", err, tt.wantErr)
			}
			if got != 100_000 || u.Size() != 100_000 {
				t.Fatalf("after failed Append: returned %d, Size() %d, want 100000", got, u.Size())
			}
			if got := dirEntries(t, s.uploadDir(u.ID())); len(got) != 2 {
				t.Fatalf("upload objects after failed Append = %v, want the state and the first part", got)
			}
			if _, err := u.Append(100_000, bytes.NewReader(b[100_000:]), -1); err != nil {
				t.Fatal(err)
			}
			// sha256 uses the running hash: proves it was rolled back.
			if _, err := u.Commit("r", oci.SHA256.FromBytes(b)); err != nil {
				t.Fatalf("Commit after failed Append = %v", err)
			}
		})
	}
}

func TestConcurrentAppendIsRejected(t *testing.T) {
	s := newStore(t)
	u, _ := s.NewUpload()
	pr, pw := io.Pipe()
	done := make(chan error)
	go func() {
		_, err := u.Append(0, pr, -1)
		done <- err
	}()
	if _, err := pw.Write([]byte("first")); err != nil { // the first append is now inside its copy
		t.Fatal(err)
	}
	if _, err := u.Append(0, bytes.NewReader([]byte("second")), -1); !errors.Is(err, ErrRangeInvalid) {
		t.Fatalf("concurrent Append = %v, want ErrRangeInvalid", err)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("first Append = %v", err)
	}
	if u.Size() != 5 {
		t.Fatalf("Size() = %d, want 5", u.Size())
	}
}

func TestCommitMismatchStoresNothing(t *testing.T) {
	for _, alg := range []oci.Algorithm{oci.SHA256, oci.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			s := newStore(t)
			u, _ := s.NewUpload()
			b := randBytes(5, 10_000)
			if _, err := u.Append(0, bytes.NewReader(b), -1); err != nil {
				t.Fatal(err)
			}
			wrong := alg.FromBytes(b[1:])
			if _, err := u.Commit("r", wrong); !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("Commit(wrong digest) = %v, want ErrDigestMismatch", err)
			}
			if got := blobFiles(t, s); len(got) != 0 {
				t.Fatalf("blob files = %v, want none", got)
			}
			if _, err := s.BlobLinked("r", wrong); !errors.Is(err, ErrBlobUnknown) {
				t.Fatalf("BlobLinked = %v, want ErrBlobUnknown", err)
			}
			if _, err := s.Upload(u.ID()); !errors.Is(err, ErrUploadUnknown) {
				t.Fatalf("Upload after mismatch = %v, want ErrUploadUnknown (upload removed)", err)
			}
			if got := dirEntries(t, s.uploadsDir()); len(got) != 0 {
				t.Fatalf("uploads = %v, want empty", got)
			}
		})
	}
}

func TestCommitRejectsBadNameAndKeepsUpload(t *testing.T) {
	s := newStore(t)
	u, _ := s.NewUpload()
	b := []byte("data")
	u.Append(0, bytes.NewReader(b), -1)
	if _, err := u.Commit("../evil", oci.SHA256.FromBytes(b)); !errors.Is(err, ErrNameInvalid) {
		t.Fatalf("Commit(../evil) = %v, want ErrNameInvalid", err)
	}
	if _, err := u.Commit("good", oci.SHA256.FromBytes(b)); err != nil {
		t.Fatalf("Commit after rejected name = %v", err)
	}
}

// TestUploadSurvivesReopen: an upload continues after the store is opened
// again (a restart, or another replica): the running sha256 state is saved
// with the upload, and another algorithm re-reads the parts at Commit.
func TestUploadSurvivesReopen(t *testing.T) {
	for _, alg := range []oci.Algorithm{oci.SHA256, oci.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			s := openStore(t, root, Options{})
			b := randBytes(21, 500_000)
			u, _ := s.NewUpload()
			if _, err := u.Append(0, bytes.NewReader(b[:200_000]), -1); err != nil {
				t.Fatal(err)
			}
			s2 := openStore(t, root, Options{})
			u2, err := s2.Upload(u.ID())
			if err != nil {
				t.Fatalf("Upload(id) after reopen = %v", err)
			}
			if u2.Size() != 200_000 {
				t.Fatalf("Size() after reopen = %d, want 200000", u2.Size())
			}
			if _, err := u2.Append(200_000, bytes.NewReader(b[200_000:]), -1); err != nil {
				t.Fatal(err)
			}
			d := alg.FromBytes(b)
			if _, err := u2.Commit("r", d); err != nil {
				t.Fatalf("Commit after reopen = %v", err)
			}
			if got := readBlob(t, s2, d); !bytes.Equal(got, b) {
				t.Fatal("blob differs")
			}
		})
	}
}

func TestCancel(t *testing.T) {
	s := newStore(t)
	u, _ := s.NewUpload()
	u.Append(0, bytes.NewReader([]byte("abc")), -1)
	if err := u.Cancel(); err != nil {
		t.Fatalf("Cancel = %v", err)
	}
	if err := u.Cancel(); !errors.Is(err, ErrUploadUnknown) {
		t.Fatalf("second Cancel = %v, want ErrUploadUnknown", err)
	}
	if _, err := s.Upload(u.ID()); !errors.Is(err, ErrUploadUnknown) {
		t.Fatalf("Upload after Cancel = %v, want ErrUploadUnknown", err)
	}
	if got := dirEntries(t, s.uploadsDir()); len(got) != 0 {
		t.Fatalf("uploads = %v, want empty", got)
	}
}

func TestPurgeUploads(t *testing.T) {
	clk := newFakeClock()
	root := filepath.Join(t.TempDir(), "root")
	opt := Options{UploadTTL: time.Hour, Now: clk.Now}
	s := openStore(t, root, opt)

	idle, _ := s.NewUpload()
	active, _ := s.NewUpload()
	busy, _ := s.NewUpload()
	clk.Advance(50 * time.Minute)
	if _, err := active.Append(0, bytes.NewReader([]byte("x")), -1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(20 * time.Minute) // idle and busy: 70 min without a write; active: 20 min

	// busy is in the middle of an append: never purged under a request.
	pr, pw := io.Pipe()
	busyDone := make(chan error)
	go func() { _, err := busy.Append(0, pr, -1); busyDone <- err }()
	pw.Write([]byte("y"))

	n, err := s.PurgeUploads()
	if err != nil || n != 1 {
		t.Fatalf("PurgeUploads = %d, %v, want 1, nil", n, err)
	}
	if _, err := s.Upload(idle.ID()); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("idle upload after purge: %v, want ErrUploadUnknown", err)
	}
	if _, err := s.Upload(active.ID()); err != nil {
		t.Errorf("active upload after purge: %v, want kept", err)
	}
	pw.Close()
	if err := <-busyDone; err != nil {
		t.Fatalf("busy Append = %v", err)
	}
	if _, err := s.Upload(busy.ID()); err != nil {
		t.Errorf("busy upload after purge: %v, want kept", err)
	}

	// After a restart uploads are judged by their state on disk, and a
	// directory a crash left without state goes too.
	broken := filepath.Join(s.uploadsDir(), "0123456789abcdef0123456789abcdef")
	if err := os.MkdirAll(broken, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeFileForTest(filepath.Join(broken, "p-0000000000000000-00000000"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	clk.Advance(59 * time.Minute) // active: 79 min idle; busy: 59 min
	s2 := openStore(t, root, opt)
	n, err = s2.PurgeUploads()
	if err != nil || n != 2 {
		t.Fatalf("PurgeUploads after reopen = %d, %v, want 2 (active, broken), nil", n, err)
	}
	if _, err := s2.Upload(busy.ID()); err != nil {
		t.Errorf("busy upload after second purge: %v, want kept", err)
	}
	if got := dirEntries(t, s2.uploadsDir()); len(got) != 1 || got[0] != busy.ID() {
		t.Errorf("uploads = %v, want [%s]", got, busy.ID())
	}
}

func TestDefaultUploadTTL(t *testing.T) {
	clk := newFakeClock()
	s := openStore(t, filepath.Join(t.TempDir(), "root"), Options{Now: clk.Now})
	s.NewUpload()
	clk.Advance(23 * time.Hour)
	if n, _ := s.PurgeUploads(); n != 0 {
		t.Fatalf("PurgeUploads after 23h = %d, want 0", n)
	}
	clk.Advance(2 * time.Hour)
	if n, _ := s.PurgeUploads(); n != 1 {
		t.Fatalf("PurgeUploads after 25h = %d, want 1", n)
	}
}
