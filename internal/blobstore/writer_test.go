package blobstore

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/airlockdev/airlock/internal/oci"
)

func TestWriterStreamsAndCommits(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("abcdefgh"), 1<<14)
	d := oci.SHA256.FromBytes(content)
	w, err := s.NewWriter(d)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(content[:1000])
	// A reader follows the temp file while it grows.
	r, err := os.Open(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make([]byte, 1000)
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, content[:1000]) {
		t.Fatalf("reading the growing file = %v", err)
	}
	if _, err := s.Stat(d); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("Stat before Commit = %v, want ErrBlobUnknown", err)
	}
	w.Write(content[1000:])
	if err := w.Commit("cache/repo"); err != nil {
		t.Fatalf("Commit = %v", err)
	}
	if n, err := s.BlobLinked("cache/repo", d); err != nil || n != int64(len(content)) {
		t.Fatalf("BlobLinked after Commit = %d, %v", n, err)
	}
	rest, _ := io.ReadAll(r)
	if !bytes.Equal(rest, content[1000:]) {
		t.Errorf("reader kept on the same file across the rename: got %d bytes, want %d", len(rest), len(content)-1000)
	}
}

func TestWriterMismatchLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := oci.SHA256.FromBytes([]byte("right"))
	w, _ := s.NewWriter(d)
	w.Write([]byte("wrong"))
	if err := w.Commit("r"); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Commit of wrong bytes = %v, want ErrDigestMismatch", err)
	}
	if _, err := s.Stat(d); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("Stat after mismatch = %v, want ErrBlobUnknown", err)
	}
	if ents, _ := os.ReadDir(s.tmpDir()); len(ents) != 0 {
		t.Errorf("tmp/ holds %d files after a mismatch, want 0", len(ents))
	}
}
