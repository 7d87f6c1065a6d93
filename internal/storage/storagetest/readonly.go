package storagetest

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// RunReadOnly runs the read side of the contract against a store that
// serves f in f.Repo from elsewhere (a pull-through cache's upstream) and
// refuses every write into f.Repo with an *oci.Error of code DENIED.
// newStore returns a fresh store whose source holds f and nothing else.
// Content the source does not hold is a local miss or a
// *storage.NotFoundUpstreamError with the matching code.
func RunReadOnly(t *testing.T, f Fixture, newStore func(t *testing.T) storage.Store) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s storage.Store, f Fixture)
	}{
		{"PullManifest", pullManifest},
		{"PullBlobs", pullBlobs},
		{"WritesDenied", writesDenied},
		{"UnknownContent", unknownReadOnly},
		{"DeleteEvicts", deleteEvicts},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newStore(t), f) })
	}
}

func pullManifest(t *testing.T, s storage.Store, f Fixture) {
	checkManifest(t, s, f, oci.Reference{Tag: f.Tag})
	checkManifest(t, s, f, oci.Reference{Digest: f.ManifestDigest()})
	if tags, err := s.Tags(ctx, f.Repo); err != nil || !slices.Contains(tags, f.Tag) {
		t.Errorf("Tags(%s) after a pull = %q, %v, want a list holding %s", f.Repo, tags, err, f.Tag)
	}
	if repos, err := s.Repositories(ctx); err != nil || !slices.Contains(repos, f.Repo) {
		t.Errorf("Repositories() after a pull = %q, %v, want a list holding %s", repos, err, f.Repo)
	}
	if refs, err := s.Referrers(ctx, f.Repo, f.ManifestDigest()); err != nil || len(refs) != 0 {
		t.Errorf("Referrers(%s) = %v, %v, want [], nil", f.ManifestDigest(), refs, err)
	}
}

func pullBlobs(t *testing.T, s storage.Store, f Fixture) {
	// The first read of the layer is a range: it must wait for verified
	// bytes, then the whole blob reads, then the stored copy does.
	readRange(t, s, f.Repo, f.LayerDigest(), f.Layer, 1000, 5000)
	checkBlob(t, s, f.Repo, f.LayerDigest(), f.Layer)
	size, err := s.StatBlob(ctx, f.Repo, f.ConfigDigest())
	if err != nil || size != int64(len(f.Config)) {
		t.Errorf("StatBlob(config) before any read = %d, %v, want %d, nil", size, err, len(f.Config))
	}
	checkBlob(t, s, f.Repo, f.ConfigDigest(), f.Config)
}

func writesDenied(t *testing.T, s storage.Store, f Fixture) {
	d := oci.SHA256.FromBytes(f.Config)
	if _, err := s.PutBlob(ctx, f.Repo, d, bytes.NewReader(f.Config)); !isDenied(err) {
		t.Errorf("PutBlob = %v, want DENIED", err)
	}
	if err := s.PutManifest(ctx, f.Repo, "pushed", record(f.Manifest)); !isDenied(err) {
		t.Errorf("PutManifest = %v, want DENIED", err)
	}
	if ok, err := s.MountBlob(ctx, f.Repo, f.Repo+"-other", d); !isDenied(err) || ok {
		t.Errorf("MountBlob = %v, %v, want false, DENIED", ok, err)
	}
	if _, err := s.NewUpload(ctx, f.Repo); !isDenied(err) {
		t.Errorf("NewUpload = %v, want DENIED", err)
	}
	if _, err := s.GetUpload(ctx, f.Repo, "0123456789abcdef0123456789abcdef"); !isDenied(err) {
		t.Errorf("GetUpload = %v, want DENIED", err)
	}
	if _, err := s.GetManifest(ctx, f.Repo, oci.Reference{Tag: "pushed"}); !isManifestUnknown(err) {
		t.Errorf("GetManifest(refused tag) = %v, want MANIFEST_UNKNOWN: nothing stored", err)
	}
}

func unknownReadOnly(t *testing.T, s storage.Store, f Fixture) {
	missing := oci.SHA256.FromBytes([]byte("never stored"))
	if _, err := s.StatBlob(ctx, f.Repo, missing); !isBlobUnknown(err) {
		t.Errorf("StatBlob(unknown) = %v, want BLOB_UNKNOWN", err)
	}
	if r, _, err := s.OpenBlob(ctx, f.Repo, missing); !isBlobUnknown(err) {
		if err == nil {
			io.Copy(io.Discard, r)
			r.Close()
		}
		t.Errorf("OpenBlob(unknown) = %v, want BLOB_UNKNOWN", err)
	}
	if _, err := s.GetManifest(ctx, f.Repo, oci.Reference{Tag: "nope"}); !isManifestUnknown(err) {
		t.Errorf("GetManifest(unknown tag) = %v, want MANIFEST_UNKNOWN", err)
	}
	if _, err := s.StatManifest(ctx, f.Repo, oci.Reference{Digest: missing}); !isManifestUnknown(err) {
		t.Errorf("StatManifest(unknown digest) = %v, want MANIFEST_UNKNOWN", err)
	}
	var nf *storage.NotFoundUpstreamError
	if _, err := s.StatBlob(ctx, f.Repo, missing); errors.As(err, &nf) && errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("StatBlob(unknown upstream) = %v: an upstream's answer must not pass for a local miss", err)
	}
}

// deleteEvicts: deleting a tag in a read-only repository drops the local
// copy; the next read gets it again. (Blobs are not deleted here: a
// pull-through store may still be storing a blob when the read that
// fetched it returns.)
func deleteEvicts(t *testing.T, s storage.Store, f Fixture) {
	checkManifest(t, s, f, oci.Reference{Tag: f.Tag})
	if err := s.DeleteTag(ctx, f.Repo, f.Tag); err != nil {
		t.Fatalf("DeleteTag = %v, want nil", err)
	}
	checkManifest(t, s, f, oci.Reference{Tag: f.Tag})
}
