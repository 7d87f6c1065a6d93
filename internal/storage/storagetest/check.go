package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// isBlobUnknown accepts a local miss or an upstream's "no such blob".
func isBlobUnknown(err error) bool {
	return isUnknown(err, storage.ErrBlobUnknown, oci.CodeBlobUnknown)
}

// isManifestUnknown accepts a local miss (manifest or repository) or an
// upstream's "no such manifest".
func isManifestUnknown(err error) bool {
	return errors.Is(err, storage.ErrNameUnknown) || isUnknown(err, storage.ErrManifestUnknown, oci.CodeManifestUnknown)
}

func isUnknown(err, local error, code oci.Code) bool {
	if errors.Is(err, local) {
		return true
	}
	var nf *storage.NotFoundUpstreamError
	return errors.As(err, &nf) && nf.Code == code
}

// isDenied reports an *oci.Error with code DENIED: a refused write.
func isDenied(err error) bool {
	var oe *oci.Error
	return errors.As(err, &oe) && oe.Code == oci.CodeDenied
}

// readBlob reads the whole blob d of repo and checks its size and bytes.
func readBlob(t *testing.T, s storage.Store, repo string, d oci.Digest, want []byte) {
	t.Helper()
	r, size, err := s.OpenBlob(context.Background(), repo, d)
	if err != nil {
		t.Fatalf("OpenBlob(%s, %s) = %v, want the blob", repo, d, err)
	}
	defer r.Close()
	if size != int64(len(want)) {
		t.Errorf("OpenBlob(%s, %s) size = %d, want %d", repo, d, size, len(want))
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading blob %s: %v", d, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("blob %s: read %d bytes that differ from the %d stored", d, len(got), len(want))
	}
}

// readRange reads [off, off+n) of blob d through Seek and checks it.
func readRange(t *testing.T, s storage.Store, repo string, d oci.Digest, want []byte, off, n int64) {
	t.Helper()
	r, _, err := s.OpenBlob(context.Background(), repo, d)
	if err != nil {
		t.Fatalf("OpenBlob(%s, %s) = %v, want the blob", repo, d, err)
	}
	defer r.Close()
	if pos, err := r.Seek(off, io.SeekStart); err != nil || pos != off {
		t.Fatalf("Seek(%d) = %d, %v, want %d, nil", off, pos, err, off)
	}
	got := make([]byte, n)
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("reading %d bytes at %d of %s: %v", n, off, d, err)
	}
	if !bytes.Equal(got, want[off:off+n]) {
		t.Errorf("range [%d,%d) of %s differs from the stored bytes", off, off+n, d)
	}
	if end, err := r.Seek(0, io.SeekEnd); err != nil || end != int64(len(want)) {
		t.Errorf("Seek(0, SeekEnd) = %d, %v, want %d, nil", end, err, len(want))
	}
}

// checkManifest checks that ref in repo answers f's manifest.
func checkManifest(t *testing.T, s storage.Store, f Fixture, ref oci.Reference) {
	t.Helper()
	ctx := context.Background()
	m, err := s.GetManifest(ctx, f.Repo, ref)
	if err != nil {
		t.Fatalf("GetManifest(%s, %s) = %v, want the manifest", f.Repo, ref, err)
	}
	if m.Digest != f.ManifestDigest() || m.MediaType != oci.MediaTypeImageManifest || !bytes.Equal(m.Body, f.Manifest) {
		t.Errorf("GetManifest(%s, %s) = %s %s (%d bytes), want %s %s (%d bytes)", f.Repo, ref,
			m.Digest, m.MediaType, len(m.Body), f.ManifestDigest(), oci.MediaTypeImageManifest, len(f.Manifest))
	}
	d, err := s.StatManifest(ctx, f.Repo, ref)
	if want := f.ManifestDescriptor(); err != nil || d.Digest != want.Digest || d.MediaType != want.MediaType || d.Size != want.Size {
		t.Errorf("StatManifest(%s, %s) = %+v, %v, want %+v, nil", f.Repo, ref, d, err, want)
	}
}

// checkBlob checks StatBlob and OpenBlob (whole and a range) of d in repo.
func checkBlob(t *testing.T, s storage.Store, repo string, d oci.Digest, want []byte) {
	t.Helper()
	size, err := s.StatBlob(context.Background(), repo, d)
	if err != nil || size != int64(len(want)) {
		t.Errorf("StatBlob(%s, %s) = %d, %v, want %d, nil", repo, d, size, err, len(want))
	}
	readBlob(t, s, repo, d, want)
	if n := int64(len(want)); n > 2 {
		readRange(t, s, repo, d, want, n/3, n/3)
	}
}
