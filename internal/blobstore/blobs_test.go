package blobstore

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"testing"

	"github.com/airlockdev/airlock/internal/oci"
)

func TestPutStatOpen(t *testing.T) {
	tests := []struct {
		name string
		alg  oci.Algorithm
		size int
	}{
		{"sha256 empty", oci.SHA256, 0},
		{"sha256 one byte", oci.SHA256, 1},
		{"sha256 1MiB+3", oci.SHA256, 1<<20 + 3},
		{"sha512 empty", oci.SHA512, 0},
		{"sha512 1MiB+3", oci.SHA512, 1<<20 + 3},
	}
	s := newStore(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := randBytes(uint64(i), tt.size)
			d := tt.alg.FromBytes(b)
			if _, err := s.Stat(d); !errors.Is(err, ErrBlobUnknown) {
				t.Fatalf("Stat(%s) before Put = %v, want ErrBlobUnknown", d, err)
			}
			n, err := s.Put(d, bytes.NewReader(b), int64(tt.size))
			if err != nil || n != int64(tt.size) {
				t.Fatalf("Put(%s) = %d, %v, want %d, nil", d, n, err, tt.size)
			}
			if got, err := s.Stat(d); err != nil || got != int64(tt.size) {
				t.Fatalf("Stat(%s) = %d, %v, want %d", d, got, err, tt.size)
			}
			if got := readBlob(t, s, d); !bytes.Equal(got, b) {
				t.Fatalf("Open(%s) content differs", d)
			}
			if p := s.blobPath(d); filepath.Base(filepath.Dir(p)) != d.Hex()[:2] {
				t.Errorf("blobPath(%s) = %s, want a <2 hex> directory", d, p)
			}
			if got := dirEntries(t, s.tmpDir()); len(got) != 0 {
				t.Errorf("tmp after Put = %v, want empty", got)
			}
		})
	}
}

func TestPutRejectsAndLeavesNothing(t *testing.T) {
	good := randBytes(7, 100_000)
	d := oci.SHA256.FromBytes(good)
	bad := bytes.Clone(good)
	bad[500] ^= 1
	tests := []struct {
		name    string
		d       oci.Digest
		r       io.Reader
		max     int64
		wantErr error
	}{
		{"one flipped bit", d, bytes.NewReader(bad), -1, ErrDigestMismatch},
		{"truncated", d, bytes.NewReader(good[:99_999]), -1, ErrDigestMismatch},
		{"sha512 of other bytes", oci.SHA512.FromBytes(bad), bytes.NewReader(good), -1, ErrDigestMismatch},
		{"over the limit", d, bytes.NewReader(good), 99_999, ErrTooLarge},
		{"reader fails", d, &errReader{data: good[:50_000], err: io.ErrUnexpectedEOF}, -1, io.ErrUnexpectedEOF},
		{"invalid digest", oci.Digest("sha256:../../etc/passwd"), bytes.NewReader(good), -1, ErrDigestInvalid},
		{"unsupported algorithm", oci.Digest("md5:d41d8cd98f00b204e9800998ecf8427e"), bytes.NewReader(good), -1, ErrDigestUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if _, err := s.Put(tt.d, tt.r, tt.max); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Put = %v, want %v", err, tt.wantErr)
			}
			if got := blobFiles(t, s); len(got) != 0 {
				t.Errorf("blob files after failed Put = %v, want none", got)
			}
			if got := dirEntries(t, s.tmpDir()); len(got) != 0 {
				t.Errorf("tmp after failed Put = %v, want empty", got)
			}
			if _, err := s.Stat(d); !errors.Is(err, ErrBlobUnknown) {
				t.Errorf("Stat after failed Put = %v, want ErrBlobUnknown", err)
			}
		})
	}
}

func TestPutExistingBlobStillVerifies(t *testing.T) {
	s := newStore(t)
	b := randBytes(1, 4096)
	d := putBlob(t, s, "", oci.SHA256, b)
	bad := bytes.Clone(b)
	bad[0] ^= 0xff
	if _, err := s.Put(d, bytes.NewReader(bad), -1); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Put(existing, wrong bytes) = %v, want ErrDigestMismatch", err)
	}
	if got := readBlob(t, s, d); !bytes.Equal(got, b) {
		t.Fatal("stored blob changed after a rejected Put")
	}
	if n, err := s.Put(d, bytes.NewReader(b), -1); err != nil || n != int64(len(b)) {
		t.Fatalf("Put(existing, right bytes) = %d, %v, want %d, nil", n, err, len(b))
	}
}

// TestConcurrentPushesOfOneBlob: 16 Puts and 16 chunked uploads of the same
// digest at once all succeed and leave one correct file and no temp file.
func TestConcurrentPushesOfOneBlob(t *testing.T) {
	for _, alg := range []oci.Algorithm{oci.SHA256, oci.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			s := newStore(t)
			b := randBytes(99, 3<<20+17)
			d := alg.FromBytes(b)
			const n = 16
			var wg sync.WaitGroup
			errs := make(chan error, 2*n)
			start := make(chan struct{})
			for i := 0; i < n; i++ {
				wg.Add(2)
				go func() {
					defer wg.Done()
					<-start
					got, err := s.Put(d, bytes.NewReader(b), -1)
					if err == nil && got != int64(len(b)) {
						err = errors.New("Put returned a wrong size")
					}
					errs <- err
				}()
				go func() {
					defer wg.Done()
					u, err := s.NewUpload()
					if err != nil {
						errs <- err
						return
					}
					<-start
					half := len(b) / 2
					if _, err := u.Append(0, bytes.NewReader(b[:half]), -1); err != nil {
						errs <- err
						return
					}
					if _, err := u.Append(int64(half), bytes.NewReader(b[half:]), -1); err != nil {
						errs <- err
						return
					}
					_, err = u.Commit("concurrent/repo", d)
					errs <- err
				}()
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("concurrent push = %v, want nil", err)
				}
			}
			if got := blobFiles(t, s); len(got) != 1 || got[0] != d {
				t.Fatalf("blob files = %v, want [%s]", got, d)
			}
			if got := readBlob(t, s, d); !bytes.Equal(got, b) {
				t.Fatal("stored blob content differs")
			}
			if got := dirEntries(t, s.tmpDir()); len(got) != 0 {
				t.Errorf("tmp = %v, want empty", got)
			}
			if got := dirEntries(t, s.uploadsDir()); len(got) != 0 {
				t.Errorf("uploads = %v, want empty", got)
			}
			if size, err := s.BlobLinked("concurrent/repo", d); err != nil || size != int64(len(b)) {
				t.Errorf("BlobLinked = %d, %v, want %d, nil", size, err, len(b))
			}
		})
	}
}
