package storagetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// Run runs the whole contract against stores from newStore: each call
// returns a fresh, empty store that accepts writes to repo and to
// repo+"-other" (any names the store treats as plain repositories).
func Run(t *testing.T, repo string, newStore func(t *testing.T) storage.Store) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s storage.Store, repo string)
	}{
		{"PushPullManifest", pushPullManifest},
		{"Referrers", referrers},
		{"DeleteManifestAndTag", deleteManifestAndTag},
		{"Blobs", blobs},
		{"MountBlob", mountBlob},
		{"Uploads", uploads},
		{"UploadCommitMismatch", uploadCommitMismatch},
		{"UnknownContent", unknownContent},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newStore(t), repo) })
	}
}

var ctx = context.Background()

// push stores f: its blobs by PutBlob, its manifest under f.Tag.
func push(t *testing.T, s storage.Store, f Fixture) {
	t.Helper()
	for _, b := range [][]byte{f.Config, f.Layer} {
		d := oci.SHA256.FromBytes(b)
		if n, err := s.PutBlob(ctx, f.Repo, d, bytes.NewReader(b)); err != nil || n != int64(len(b)) {
			t.Fatalf("PutBlob(%s, %s) = %d, %v, want %d, nil", f.Repo, d, n, err, len(b))
		}
	}
	if err := s.PutManifest(ctx, f.Repo, f.Tag, record(f.Manifest)); err != nil {
		t.Fatalf("PutManifest(%s, %s) = %v, want nil", f.Repo, f.Tag, err)
	}
}

func pushPullManifest(t *testing.T, s storage.Store, repo string) {
	f := NewFixture(repo, "push-pull")
	push(t, s, f)
	checkManifest(t, s, f, oci.Reference{Tag: f.Tag})
	checkManifest(t, s, f, oci.Reference{Digest: f.ManifestDigest()})
	checkBlob(t, s, repo, f.ConfigDigest(), f.Config)
	checkBlob(t, s, repo, f.LayerDigest(), f.Layer)
	if tags, err := s.Tags(ctx, repo); err != nil || !slices.Equal(tags, []string{f.Tag}) {
		t.Errorf("Tags(%s) = %q, %v, want [%s], nil", repo, tags, err, f.Tag)
	}
	// A second tag on the same manifest.
	if err := s.PutManifest(ctx, repo, "v2", record(f.Manifest)); err != nil {
		t.Fatalf("PutManifest(%s, v2) = %v, want nil", repo, err)
	}
	if tags, err := s.Tags(ctx, repo); err != nil || !slices.Equal(tags, []string{f.Tag, "v2"}) {
		t.Errorf("Tags(%s) = %q, %v, want [%s v2], nil", repo, tags, err, f.Tag)
	}
	if repos, err := s.Repositories(ctx); err != nil || !slices.Contains(repos, repo) {
		t.Errorf("Repositories() = %q, %v, want a list holding %s", repos, err, repo)
	}
}

func referrers(t *testing.T, s storage.Store, repo string) {
	f := NewFixture(repo, "referrers")
	push(t, s, f)
	subject := f.ManifestDescriptor()
	if refs, err := s.Referrers(ctx, repo, subject.Digest); err != nil || len(refs) != 0 {
		t.Errorf("Referrers(%s) before any = %v, %v, want [], nil", subject.Digest, refs, err)
	}
	sig := imageManifest(f.Config, f.Layer, &subject)
	if err := s.PutManifest(ctx, repo, "", record(sig)); err != nil {
		t.Fatalf("PutManifest(referrer) = %v, want nil", err)
	}
	refs, err := s.Referrers(ctx, repo, subject.Digest)
	want := oci.SHA256.FromBytes(sig)
	if err != nil || len(refs) != 1 || refs[0].Digest != want || refs[0].ArtifactType != "application/vnd.example.signature" {
		t.Errorf("Referrers(%s) = %+v, %v, want one descriptor of %s with its artifactType", subject.Digest, refs, err, want)
	}
	// Unknown repositories and subjects are empty lists, never errors.
	if refs, err := s.Referrers(ctx, repo+"-none", subject.Digest); err != nil || len(refs) != 0 {
		t.Errorf("Referrers(unknown repo) = %v, %v, want [], nil", refs, err)
	}
}

func deleteManifestAndTag(t *testing.T, s storage.Store, repo string) {
	f := NewFixture(repo, "delete")
	push(t, s, f)
	if err := s.DeleteTag(ctx, repo, f.Tag); err != nil {
		t.Fatalf("DeleteTag(%s) = %v, want nil", f.Tag, err)
	}
	if _, err := s.GetManifest(ctx, repo, oci.Reference{Tag: f.Tag}); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Errorf("GetManifest(deleted tag) = %v, want ErrManifestUnknown", err)
	}
	if err := s.DeleteTag(ctx, repo, f.Tag); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Errorf("DeleteTag(deleted tag) = %v, want ErrManifestUnknown", err)
	}
	checkManifest(t, s, f, oci.Reference{Digest: f.ManifestDigest()}) // the revision stays
	if err := s.DeleteManifest(ctx, repo, f.ManifestDigest()); err != nil {
		t.Fatalf("DeleteManifest = %v, want nil", err)
	}
	if _, err := s.GetManifest(ctx, repo, oci.Reference{Digest: f.ManifestDigest()}); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Errorf("GetManifest(deleted digest) = %v, want ErrManifestUnknown", err)
	}
	if _, err := s.StatManifest(ctx, repo, oci.Reference{Digest: f.ManifestDigest()}); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Errorf("StatManifest(deleted digest) = %v, want ErrManifestUnknown", err)
	}
	if err := s.DeleteManifest(ctx, repo, f.ManifestDigest()); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Errorf("DeleteManifest(deleted) = %v, want ErrManifestUnknown", err)
	}
}

func blobs(t *testing.T, s storage.Store, repo string) {
	b := layerBytes("blobs", 64<<10)
	d := oci.SHA256.FromBytes(b)
	if _, err := s.PutBlob(ctx, repo, d, bytes.NewReader(b[1:])); !errors.Is(err, storage.ErrDigestMismatch) {
		t.Errorf("PutBlob(wrong bytes) = %v, want ErrDigestMismatch", err)
	}
	if _, err := s.StatBlob(ctx, repo, d); !errors.Is(err, storage.ErrBlobUnknown) && !errors.Is(err, storage.ErrNameUnknown) {
		t.Errorf("StatBlob after a mismatch = %v, want ErrBlobUnknown: nothing stored", err)
	}
	if n, err := s.PutBlob(ctx, repo, d, bytes.NewReader(b)); err != nil || n != int64(len(b)) {
		t.Fatalf("PutBlob = %d, %v, want %d, nil", n, err, len(b))
	}
	checkBlob(t, s, repo, d, b)
	if err := s.DeleteBlob(ctx, repo, d); err != nil {
		t.Fatalf("DeleteBlob = %v, want nil", err)
	}
	if _, err := s.StatBlob(ctx, repo, d); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("StatBlob(deleted) = %v, want ErrBlobUnknown", err)
	}
	if _, _, err := s.OpenBlob(ctx, repo, d); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("OpenBlob(deleted) = %v, want ErrBlobUnknown", err)
	}
	if err := s.DeleteBlob(ctx, repo, d); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("DeleteBlob(deleted) = %v, want ErrBlobUnknown", err)
	}
}

func mountBlob(t *testing.T, s storage.Store, repo string) {
	other := repo + "-other"
	b := layerBytes("mount", 10<<10)
	d := oci.SHA256.FromBytes(b)
	if ok, err := s.MountBlob(ctx, other, repo, d); err != nil || ok {
		t.Errorf("MountBlob(from a repo without it) = %v, %v, want false, nil", ok, err)
	}
	if _, err := s.PutBlob(ctx, repo, d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StatBlob(ctx, other, d); !errors.Is(err, storage.ErrBlobUnknown) && !errors.Is(err, storage.ErrNameUnknown) {
		t.Errorf("StatBlob(other repo before the mount) = %v, want ErrBlobUnknown", err)
	}
	if ok, err := s.MountBlob(ctx, other, repo, d); err != nil || !ok {
		t.Fatalf("MountBlob = %v, %v, want true, nil", ok, err)
	}
	checkBlob(t, s, other, d, b)
}

func uploads(t *testing.T, s storage.Store, repo string) {
	b := layerBytes("upload", 100<<10)
	d := oci.SHA256.FromBytes(b)
	u, err := s.NewUpload(ctx, repo)
	if err != nil {
		t.Fatalf("NewUpload = %v, want nil", err)
	}
	if u.ID() == "" || u.Size() != 0 {
		t.Errorf("new upload: ID %q, Size %d, want an id and 0", u.ID(), u.Size())
	}
	half := int64(len(b) / 2)
	if n, err := u.Append(0, bytes.NewReader(b[:half]), -1); err != nil || n != half {
		t.Fatalf("Append(0) = %d, %v, want %d, nil", n, err, half)
	}
	if _, err := u.Append(1, bytes.NewReader(b[half:]), -1); !errors.Is(err, storage.ErrRangeInvalid) {
		t.Errorf("Append(wrong offset) = %v, want ErrRangeInvalid", err)
	}
	if _, err := u.Append(half, bytes.NewReader(b[half:]), 10); !errors.Is(err, storage.ErrTooLarge) {
		t.Errorf("Append(over maxBytes) = %v, want ErrTooLarge", err)
	}
	again, err := s.GetUpload(ctx, repo, u.ID())
	if err != nil || again.ID() != u.ID() || again.Size() != half {
		t.Fatalf("GetUpload = %v, %v, want the upload with %d bytes (a failed append changes nothing)", again, err, half)
	}
	if n, err := again.Append(half, bytes.NewReader(b[half:]), -1); err != nil || n != int64(len(b)) {
		t.Fatalf("Append(rest) = %d, %v, want %d, nil", n, err, len(b))
	}
	if n, err := again.Commit(repo, d); err != nil || n != int64(len(b)) {
		t.Fatalf("Commit = %d, %v, want %d, nil", n, err, len(b))
	}
	checkBlob(t, s, repo, d, b)
	if _, err := s.GetUpload(ctx, repo, u.ID()); !errors.Is(err, storage.ErrUploadUnknown) {
		t.Errorf("GetUpload(committed) = %v, want ErrUploadUnknown", err)
	}

	c, err := s.NewUpload(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Cancel(); err != nil {
		t.Fatalf("Cancel = %v, want nil", err)
	}
	if _, err := s.GetUpload(ctx, repo, c.ID()); !errors.Is(err, storage.ErrUploadUnknown) {
		t.Errorf("GetUpload(cancelled) = %v, want ErrUploadUnknown", err)
	}
	for _, id := range []string{"", "no-such-upload", "../../etc"} {
		if _, err := s.GetUpload(ctx, repo, id); !errors.Is(err, storage.ErrUploadUnknown) {
			t.Errorf("GetUpload(%q) = %v, want ErrUploadUnknown", id, err)
		}
	}
}

func uploadCommitMismatch(t *testing.T, s storage.Store, repo string) {
	b := layerBytes("mismatch", 1000)
	u, err := s.NewUpload(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Append(0, bytes.NewReader(b), -1); err != nil {
		t.Fatal(err)
	}
	wrong := oci.SHA256.FromBytes(b[1:])
	if _, err := u.Commit(repo, wrong); !errors.Is(err, storage.ErrDigestMismatch) {
		t.Errorf("Commit(wrong digest) = %v, want ErrDigestMismatch", err)
	}
	if _, err := s.StatBlob(ctx, repo, wrong); !errors.Is(err, storage.ErrBlobUnknown) && !errors.Is(err, storage.ErrNameUnknown) {
		t.Errorf("StatBlob after a failed commit = %v, want ErrBlobUnknown", err)
	}
	if _, err := s.GetUpload(ctx, repo, u.ID()); !errors.Is(err, storage.ErrUploadUnknown) {
		t.Errorf("GetUpload after a failed commit = %v, want ErrUploadUnknown: the client starts over", err)
	}
}

func unknownContent(t *testing.T, s storage.Store, repo string) {
	if _, err := s.Tags(ctx, repo); !errors.Is(err, storage.ErrNameUnknown) {
		t.Errorf("Tags(unknown repo) = %v, want ErrNameUnknown", err)
	}
	if _, err := s.GetManifest(ctx, repo, oci.Reference{Tag: "v1"}); !isManifestUnknown(err) {
		t.Errorf("GetManifest(unknown repo) = %v, want ErrNameUnknown or ErrManifestUnknown", err)
	}
	f := NewFixture(repo, "unknown")
	push(t, s, f)
	missing := oci.SHA256.FromBytes([]byte("never stored"))
	if _, err := s.GetManifest(ctx, repo, oci.Reference{Tag: "nope"}); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Errorf("GetManifest(unknown tag) = %v, want ErrManifestUnknown", err)
	}
	if _, err := s.StatManifest(ctx, repo, oci.Reference{Digest: missing}); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Errorf("StatManifest(unknown digest) = %v, want ErrManifestUnknown", err)
	}
	if _, err := s.StatBlob(ctx, repo, missing); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("StatBlob(unknown) = %v, want ErrBlobUnknown", err)
	}
	if _, _, err := s.OpenBlob(ctx, repo, missing); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("OpenBlob(unknown) = %v, want ErrBlobUnknown", err)
	}
}
