package blobstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openStore(t testing.TB, root string, opt Options) *Store {
	t.Helper()
	s, err := Open(root, opt)
	if err != nil {
		t.Fatalf("Open(%s) = %v", root, err)
	}
	return s
}

func newStore(t testing.TB) *Store {
	t.Helper()
	return openStore(t, filepath.Join(t.TempDir(), "root"), Options{})
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// putBlob stores b with alg and links it into repo (when not empty).
func putBlob(t testing.TB, s *Store, repo string, alg oci.Algorithm, b []byte) oci.Digest {
	t.Helper()
	d := alg.FromBytes(b)
	if _, err := s.Put(d, bytes.NewReader(b), -1); err != nil {
		t.Fatalf("Put(%s) = %v", d, err)
	}
	if repo != "" {
		if err := s.LinkBlob(repo, d); err != nil {
			t.Fatalf("LinkBlob(%s, %s) = %v", repo, d, err)
		}
	}
	return d
}

// imageManifest renders an OCI image manifest for config and layers.
func imageManifest(t testing.TB, config oci.Descriptor, layers []oci.Descriptor, subject *oci.Descriptor) []byte {
	t.Helper()
	m := oci.Manifest{
		SchemaVersion: 2,
		MediaType:     oci.MediaTypeImageManifest,
		Config:        &config,
		Layers:        layers,
		Subject:       subject,
	}
	if layers == nil {
		m.Layers = []oci.Descriptor{}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// image is what pushImage pushed.
type image struct {
	manifest oci.Digest
	config   oci.Digest
	layers   []oci.Digest
	body     []byte
}

func desc(mt string, d oci.Digest, size int) oci.Descriptor {
	return oci.Descriptor{MediaType: mt, Digest: d, Size: int64(size)}
}

// pushImage pushes a config (configBytes), the given layers and a manifest
// referencing them into repo, tagged tag (if not empty).
func pushImage(t testing.TB, s *Store, repo, tag string, configBytes []byte, layers ...[]byte) image {
	t.Helper()
	var img image
	img.config = putBlob(t, s, repo, oci.SHA256, configBytes)
	var ld []oci.Descriptor
	for _, l := range layers {
		d := putBlob(t, s, repo, oci.SHA256, l)
		img.layers = append(img.layers, d)
		ld = append(ld, desc("application/vnd.oci.image.layer.v1.tar", d, len(l)))
	}
	img.body = imageManifest(t, desc("application/vnd.oci.image.config.v1+json", img.config, len(configBytes)), ld, nil)
	img.manifest = oci.SHA256.FromBytes(img.body)
	rec := ManifestRecord{Digest: img.manifest, MediaType: oci.MediaTypeImageManifest, Body: img.body}
	if err := s.PutManifest(repo, rec, tag); err != nil {
		t.Fatalf("PutManifest(%s, %s) = %v", repo, tag, err)
	}
	return img
}

// dirEntries lists the names in dir (empty for a missing dir).
func dirEntries(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// treeSnapshot maps every path under dir to its size and mtime.
func treeSnapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fmt.Sprintf("%v %v %d", fi.Mode(), fi.ModTime(), fi.Size())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] += " " + string(oci.SHA256.FromBytes(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readBlob reads blob d fully through Store.Open.
func readBlob(t testing.TB, s *Store, d oci.Digest) []byte {
	t.Helper()
	f, size, err := s.Open(d)
	if err != nil {
		t.Fatalf("Open(%s) = %v", d, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != size {
		t.Fatalf("Open(%s) size = %d, read %d bytes", d, size, len(b))
	}
	return b
}

// blobFiles lists every digest present under root/blobs.
func blobFiles(t testing.TB, s *Store) []oci.Digest {
	t.Helper()
	var out []oci.Digest
	err := filepath.WalkDir(filepath.Join(s.root, dirBlobs), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			alg := filepath.Base(filepath.Dir(filepath.Dir(p)))
			out = append(out, oci.Digest(alg+":"+d.Name()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// errReader yields data then fails.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func writeFileForTest(p string, b []byte) error { return os.WriteFile(p, b, 0o600) }

// File paths of a file-system store's objects (tests poke at them).
func (s *Store) blobPath(d oci.Digest) string {
	return filepath.Join(s.root, filepath.FromSlash(blobName(d)))
}
func (s *Store) linkPath(repo string, d oci.Digest) string {
	return filepath.Join(s.root, filepath.FromSlash(linkName(repo, d)))
}
func (s *Store) revisionPath(repo string, d oci.Digest) string {
	return filepath.Join(s.root, filepath.FromSlash(revisionName(repo, d)))
}
func (s *Store) tagPath(repo, tag string) string {
	return filepath.Join(s.root, filepath.FromSlash(tagName(repo, tag)))
}
func (s *Store) repoDir(repo string) string {
	return filepath.Join(s.root, filepath.FromSlash(repoName(repo)))
}
func (s *Store) uploadsDir() string { return filepath.Join(s.root, dirUploads) }
func (s *Store) uploadDir(id string) string {
	return filepath.Join(s.root, filepath.FromSlash(uploadName(id)))
}
func (s *Store) reposDir() string { return filepath.Join(s.root, dirRepos) }
