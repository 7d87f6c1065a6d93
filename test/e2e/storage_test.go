//go:build e2e

package e2e

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// storedBlobs walks a registry's storage directory and returns every blob
// file, keyed by its digest: a file under a "blobs" directory named by the
// hex digest itself (airlock: blobs/<alg>/<2 hex>/<hex>) or a file named
// "data" in a directory named by it (distribution: blobs/sha256/ab/<hex>/data).
// It reports an error for every such file whose content does not hash to
// its name: a partial or corrupt blob visible under its digest.
//
// Everything else (upload and temp files, and the per-repository index
// under "_"-prefixed directories, whose files are named by digests but hold
// records or links) is not looked at.
func storedBlobs(t testing.TB, root string) map[string]string {
	t.Helper()
	found := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || !isBlobPath(root, path) {
			return nil
		}
		name := d.Name()
		if name == "data" {
			name = filepath.Base(filepath.Dir(path))
		}
		algo := digestAlgo(name)
		if algo == "" {
			return nil
		}
		want := algo + ":" + name
		got, err := fileDigest(path, algo)
		if err != nil {
			return err
		}
		if got != want {
			t.Errorf("stored blob %s holds content %s: partial or corrupt blob visible", path, got)
		}
		found[want] = path
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return found
}

// isBlobPath: path has a "blobs" component below root and no component
// that starts with '_' (repository index directories).
func isBlobPath(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return false
	}
	blobs := false
	for _, c := range strings.Split(filepath.ToSlash(rel), "/") {
		if strings.HasPrefix(c, "_") {
			return false
		}
		if c == "blobs" {
			blobs = true
		}
	}
	return blobs
}

// digestAlgo returns the algorithm whose hex digests look like name, or "".
func digestAlgo(name string) string {
	var algo string
	switch len(name) {
	case 64:
		algo = "sha256"
	case 128:
		algo = "sha512"
	default:
		return ""
	}
	for _, c := range name {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
	}
	return algo
}

func fileDigest(path, algo string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var h hash.Hash = sha256.New()
	if algo == "sha512" {
		h = sha512.New()
	}
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return algo + ":" + hex.EncodeToString(h.Sum(nil)), nil
}

// eventuallyStored waits up to 10s for blob d to appear in the store (a
// cache fill stores its blob right after the last byte is served).
func eventuallyStored(t testing.TB, root, d string) bool {
	t.Helper()
	for i := 0; i < 200; i++ {
		if _, ok := storedBlobs(t, root)[d]; ok {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
