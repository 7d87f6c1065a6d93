package blobstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/airlockdev/airlock/internal/oci"
)

// pathScene is a store at parent/root next to files it must never touch.
type pathScene struct {
	s      *Store
	parent string
	before map[string]string
}

func newPathScene(t *testing.T) *pathScene {
	t.Helper()
	parent := t.TempDir()
	if err := os.WriteFile(filepath.Join(parent, "secret"), []byte("do not touch"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(parent, "outside", "repos"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, filepath.Join(parent, "root"), Options{})
	return &pathScene{s: s, parent: parent, before: outsideSnapshot(t, parent)}
}

// outsideSnapshot is the tree of parent without root/.
func outsideSnapshot(t *testing.T, parent string) map[string]string {
	t.Helper()
	snap := treeSnapshot(t, parent)
	for k := range snap {
		if k == "." || k == "root" || strings.HasPrefix(k, "root"+string(filepath.Separator)) {
			delete(snap, k)
		}
	}
	return snap
}

func (p *pathScene) check(t *testing.T) {
	t.Helper()
	if diff := cmp.Diff(p.before, outsideSnapshot(t, p.parent)); diff != "" {
		t.Fatalf("files outside root changed (-before +after):\n%s", diff)
	}
	if got := dirEntries(t, p.s.reposDir()); len(got) != 0 {
		t.Fatalf("repos/ = %v, want empty after only hostile requests", got)
	}
	if got := dirEntries(t, p.s.tmpDir()); len(got) != 0 {
		t.Fatalf("tmp/ = %v, want empty", got)
	}
}

var hostileNames = []string{
	"", "..", "../x", "../../etc", "a/../../b", "a/..", "/abs", "/", "a//b", "a/", "./a",
	"a\x00b", "\x00", strings.Repeat("a", 256), strings.Repeat("a/", 200) + "a",
	"_manifests", "a/_manifests", "a/_layers", "a/_referrers", "_uploads", ".hidden", "a/.x",
	"A", "a b", "a\\b", "a:b", "a\nb", "é",
}

func TestHostileRepositoryNames(t *testing.T) {
	p := newPathScene(t)
	s := p.s
	b := []byte("blob")
	d := putBlob(t, s, "", oci.SHA256, b)
	body := []byte(`{}`)
	rec := ManifestRecord{Digest: oci.SHA256.FromBytes(body), MediaType: oci.MediaTypeImageManifest, Body: body}
	for _, name := range hostileNames {
		t.Run(strings.ToValidUTF8(name[:min(len(name), 30)], "?"), func(t *testing.T) {
			u, err := s.NewUpload()
			if err != nil {
				t.Fatal(err)
			}
			u.Append(0, bytes.NewReader(b), -1)
			calls := map[string]error{}
			calls["LinkBlob"] = s.LinkBlob(name, d)
			_, calls["BlobLinked"] = s.BlobLinked(name, d)
			calls["UnlinkBlob"] = s.UnlinkBlob(name, d)
			calls["PutManifest"] = s.PutManifest(name, rec, "v1")
			_, calls["GetManifest"] = s.GetManifest(name, "v1")
			_, _, _, calls["StatManifest"] = s.StatManifest(name, string(rec.Digest))
			calls["DeleteManifest"] = s.DeleteManifest(name, rec.Digest)
			calls["DeleteTag"] = s.DeleteTag(name, "v1")
			_, calls["Tags"] = s.Tags(name)
			_, calls["Referrers"] = s.Referrers(name, d)
			_, calls["Commit"] = u.Commit(name, d)
			for fn, err := range calls {
				if !errors.Is(err, ErrNameInvalid) {
					t.Errorf("%s(%q) = %v, want ErrNameInvalid", fn, name, err)
				}
			}
			if u.Cancel() != nil {
				t.Errorf("upload gone after Commit(%q): a rejected name must leave it", name)
			}
		})
	}
	p.check(t)
}

func TestHostileTags(t *testing.T) {
	p := newPathScene(t)
	s := p.s
	body := []byte(`{}`)
	rec := ManifestRecord{Digest: oci.SHA256.FromBytes(body), MediaType: oci.MediaTypeImageManifest, Body: body}
	for _, tag := range []string{"..", "../x", "../../../secret", "a/b", "/etc", "x\x00", ".hidden", "-x", "a b", strings.Repeat("t", 129), "é"} {
		if err := s.PutManifest("ok", rec, tag); !errors.Is(err, ErrReferenceInvalid) {
			t.Errorf("PutManifest(tag %q) = %v, want ErrReferenceInvalid", tag, err)
		}
		if err := s.DeleteTag("ok", tag); !errors.Is(err, ErrReferenceInvalid) {
			t.Errorf("DeleteTag(%q) = %v, want ErrReferenceInvalid", tag, err)
		}
		if _, err := s.GetManifest("ok", tag); !errors.Is(err, ErrReferenceInvalid) {
			t.Errorf("GetManifest(%q) = %v, want ErrReferenceInvalid", tag, err)
		}
	}
	if err := s.DeleteTag("ok", ""); !errors.Is(err, ErrReferenceInvalid) {
		t.Errorf("DeleteTag(\"\") = %v, want ErrReferenceInvalid", err)
	}
	p.check(t)
}

func TestHostileUploadIDs(t *testing.T) {
	p := newPathScene(t)
	u, err := p.s.NewUpload()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{
		"", ".", "..", "../x", "/tmp", "../root/uploads/" + u.ID(), u.ID() + "/..", u.ID() + "/data",
		strings.ToUpper(u.ID()), u.ID()[:31], u.ID() + "0", u.ID()[:31] + "\x00", u.ID()[:31] + "g",
		strings.Repeat("a", 4096),
	} {
		if _, err := p.s.Upload(id); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("Upload(%q) = %v, want ErrUploadUnknown", id, err)
		}
	}
	if got, err := p.s.Upload(u.ID()); err != nil || got != u {
		t.Errorf("Upload(real id) = %v, %v; want the same upload", got, err)
	}
	u.Cancel()
	p.check(t)
}

func TestHostileDigests(t *testing.T) {
	p := newPathScene(t)
	s := p.s
	for _, d := range []oci.Digest{
		"", "sha256:", "sha256:../../../secret", "sha256/../../secret", "../sha256:00",
		oci.Digest("sha256:" + strings.Repeat("A", 64)), oci.Digest("sha256:" + strings.Repeat("0", 63)),
		oci.Digest("sha256:" + strings.Repeat("0", 63) + "\x00"), oci.Digest("sha512:" + strings.Repeat("0", 64)),
		oci.Digest("md5:" + strings.Repeat("0", 32)), oci.Digest(strings.Repeat("x", 5000)),
	} {
		var errs []error
		_, err := s.Stat(d)
		errs = append(errs, err)
		_, _, err = s.Open(d)
		errs = append(errs, err)
		_, err = s.Put(d, bytes.NewReader(nil), -1)
		errs = append(errs, err)
		errs = append(errs, s.LinkBlob("ok", d), s.UnlinkBlob("ok", d), s.DeleteManifest("ok", d))
		_, err = s.BlobLinked("ok", d)
		errs = append(errs, err)
		_, err = s.Referrers("ok", d)
		errs = append(errs, err)
		errs = append(errs, s.PutManifest("ok", ManifestRecord{Digest: d, MediaType: oci.MediaTypeImageManifest}, ""))
		for i, err := range errs {
			if !errors.Is(err, ErrDigestInvalid) && !errors.Is(err, ErrDigestUnsupported) {
				t.Errorf("call %d with digest %.40q = %v, want ErrDigestInvalid or ErrDigestUnsupported", i, d, err)
			}
		}
	}
	p.check(t)
}
