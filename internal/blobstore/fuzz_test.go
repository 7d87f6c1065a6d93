package blobstore

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/oci"
)

// FuzzUntrustedNames feeds repository names, tags, upload ids and digests as
// they arrive from request paths to the store. Whatever is accepted maps to
// a path inside root, and nothing outside root is ever created.
func FuzzUntrustedNames(f *testing.F) {
	for _, n := range hostileNames {
		f.Add(n, "v1", "0123456789abcdef0123456789abcdef", "sha256:"+strings.Repeat("0", 64))
	}
	f.Add("library/nginx", "latest", "", "sha512:"+strings.Repeat("a", 128))
	f.Add("a/b/c", "../../x", "../../../etc", "sha256:../../x")
	f.Add("a__b--c.d", "_T.1-", strings.Repeat("f", 32), "sha256/"+strings.Repeat("0", 64))

	parent := f.TempDir()
	s := openStore(f, filepath.Join(parent, "root"), Options{})
	blob := []byte("fuzz")
	blobD := putBlob(f, s, "", oci.SHA256, blob)
	body := []byte(`{"schemaVersion":2}`)
	rec := ManifestRecord{Digest: oci.SHA256.FromBytes(body), MediaType: oci.MediaTypeImageManifest, Body: body}

	f.Fuzz(func(t *testing.T, repo, tag, id, digest string) {
		if err := s.checkRepo(repo); err == nil {
			rel, rerr := filepath.Rel(filepath.Join(s.root, dirRepos), s.repoDir(repo))
			if rerr != nil || rel == "." || strings.HasPrefix(rel, "..") {
				t.Fatalf("accepted name %q maps to %q outside repos/", repo, rel)
			}
			for _, c := range strings.Split(rel, string(filepath.Separator)) {
				if c == "" || c[0] == '_' || c[0] == '.' {
					t.Fatalf("accepted name %q has component %q", repo, c)
				}
			}
		}
		d := oci.Digest(digest)
		s.LinkBlob(repo, blobD)
		s.BlobLinked(repo, d)
		s.PutManifest(repo, rec, tag)
		s.GetManifest(repo, tag)
		s.GetManifest(repo, digest)
		s.Tags(repo)
		s.Referrers(repo, d)
		s.DeleteTag(repo, tag)
		s.Stat(d)
		s.Put(d, bytes.NewReader(blob), 100)
		if u, err := s.Upload(id); err == nil {
			u.Commit(repo, d)
		}
		if got := dirEntries(t, parent); !slices.Equal(got, []string{"root"}) {
			t.Fatalf("entries next to root = %v, want [root]", got)
		}
		for _, top := range dirEntries(t, s.root) {
			if !slices.Contains([]string{dirBlobs, dirRepos, dirTmp, dirUploads, lockFileName}, top) {
				t.Fatalf("unexpected top-level entry %q in root", top)
			}
		}
	})
}

// FuzzUploadState feeds arbitrary bytes as an upload's state object (what
// a crash, a full disk or another replica may leave) next to one part of
// some length. Loading must answer an upload whose size its parts make up,
// or an error wrapping ErrUploadUnknown; appending and committing it then
// never panic, and a commit stores only a blob that hashes to its digest.
func FuzzUploadState(f *testing.F) {
	part := "p-0000000000000000-0a0b0c0d"
	f.Add([]byte(`{"size":3,"parts":[{"name":"`+part+`","size":3}],"updated":"2030-01-02T03:04:05Z"}`), uint16(3))
	f.Add([]byte(`{"size":5,"parts":[{"name":"`+part+`","size":5}]}`), uint16(3))
	f.Add([]byte(`{"size":2,"parts":[{"name":"../../blobs/x","size":2}]}`), uint16(2))
	f.Add([]byte(`{"size":-1}`), uint16(0))
	f.Add([]byte(`{"size":9223372036854775807}`), uint16(1))
	f.Add([]byte(`{"size":1e400}`), uint16(1))
	f.Add([]byte(`{"size":0,"sha256":"AAAA"}`), uint16(0))
	f.Add([]byte(`[]`), uint16(2))
	f.Add([]byte{}, uint16(0))
	s := openStore(f, filepath.Join(f.TempDir(), "root"), Options{})
	f.Fuzz(func(t *testing.T, state []byte, dataLen uint16) {
		u, err := s.NewUpload()
		if err != nil {
			t.Fatal(err)
		}
		id := u.ID()
		s.upMu.Lock()
		delete(s.uploads, id) // as after a restart: the next Upload loads it
		s.upMu.Unlock()
		defer s.removeUploadObjects(id)
		data := bytes.Repeat([]byte{'x'}, int(dataLen))
		if err := s.putObj(uploadName(id)+"/"+uploadStateName, state); err != nil {
			t.Fatal(err)
		}
		if err := s.putObj(uploadName(id)+"/"+part, data); err != nil {
			t.Fatal(err)
		}
		got, err := s.Upload(id)
		if err != nil {
			if !errors.Is(err, ErrUploadUnknown) {
				t.Fatalf("Upload with state %q = %v, want an error wrapping ErrUploadUnknown", state, err)
			}
			return
		}
		if got.Size() < 0 {
			t.Fatalf("Upload with state %q: Size() = %d", state, got.Size())
		}
		got.Append(got.Size(), bytes.NewReader([]byte("y")), -1)
		want := oci.SHA256.FromBytes(append(data, 'y'))
		if _, err := got.Commit("fuzz/upload", want); err == nil {
			b := readBlob(t, s, want)
			if oci.SHA256.FromBytes(b) != want {
				t.Fatalf("committed blob does not hash to its digest (state %q)", state)
			}
		}
	})
}
