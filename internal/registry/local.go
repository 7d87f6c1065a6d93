package registry

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
)

// LocalStore implements Store over a blobstore on local disk.
type LocalStore struct {
	bs *blobstore.Store
}

var _ Store = (*LocalStore)(nil)

// NewLocalStore wraps bs.
func NewLocalStore(bs *blobstore.Store) *LocalStore { return &LocalStore{bs: bs} }

// Errors a Store reports; the HTTP layer maps them to OCI codes.
var (
	ErrBlobUnknown     = errors.New("blob unknown")
	ErrManifestUnknown = errors.New("manifest unknown")
	ErrNameUnknown     = errors.New("repository unknown")
	ErrUploadUnknown   = errors.New("upload unknown")
	ErrDigestMismatch  = errors.New("digest mismatch")
	ErrRangeInvalid    = errors.New("range invalid")
	ErrTooLarge        = errors.New("too large")
)

// mapErr translates blobstore sentinels into this package's.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	for _, m := range []struct{ from, to error }{
		{blobstore.ErrBlobUnknown, ErrBlobUnknown},
		{blobstore.ErrManifestUnknown, ErrManifestUnknown},
		{blobstore.ErrTagUnknown, ErrManifestUnknown},
		{blobstore.ErrNameUnknown, ErrNameUnknown},
		{blobstore.ErrUploadUnknown, ErrUploadUnknown},
		{blobstore.ErrDigestMismatch, ErrDigestMismatch},
		{blobstore.ErrRangeInvalid, ErrRangeInvalid},
		{blobstore.ErrTooLarge, ErrTooLarge},
	} {
		if errors.Is(err, m.from) {
			return fmt.Errorf("%w: %w", m.to, err)
		}
	}
	return err
}

func (s *LocalStore) GetManifest(_ context.Context, repo string, ref oci.Reference) (Manifest, error) {
	rec, err := s.bs.GetManifest(repo, ref.String())
	if err != nil {
		return Manifest{}, mapErr(err)
	}
	return Manifest{Digest: rec.Digest, MediaType: rec.MediaType, Size: int64(len(rec.Body)), Body: rec.Body}, nil
}

func (s *LocalStore) StatManifest(_ context.Context, repo string, ref oci.Reference) (Manifest, error) {
	d, mt, size, err := s.bs.StatManifest(repo, ref.String())
	if err != nil {
		return Manifest{}, mapErr(err)
	}
	return Manifest{Digest: d, MediaType: mt, Size: size}, nil
}

func (s *LocalStore) PutManifest(_ context.Context, repo, tag string, m Manifest) error {
	rec := blobstore.ManifestRecord{Digest: m.Digest, MediaType: m.MediaType, Body: m.Body}
	if p := m.Parsed; p != nil {
		if p.Subject != nil {
			sd := p.Subject.Digest
			rec.Subject = &sd
		}
		rec.ArtifactType = p.EffectiveArtifactType()
		rec.Annotations = p.Annotations
	}
	return mapErr(s.bs.PutManifest(repo, rec, tag))
}

func (s *LocalStore) DeleteManifest(_ context.Context, repo string, d oci.Digest) error {
	return mapErr(s.bs.DeleteManifest(repo, d))
}

func (s *LocalStore) DeleteTag(_ context.Context, repo, tag string) error {
	return mapErr(s.bs.DeleteTag(repo, tag))
}

func (s *LocalStore) Tags(_ context.Context, repo string) ([]string, error) {
	tags, err := s.bs.Tags(repo)
	return tags, mapErr(err)
}

func (s *LocalStore) Referrers(_ context.Context, repo string, subject oci.Digest) ([]oci.Descriptor, error) {
	refs, err := s.bs.Referrers(repo, subject)
	if errors.Is(err, blobstore.ErrNameUnknown) {
		return nil, nil
	}
	return refs, mapErr(err)
}

func (s *LocalStore) Repositories(context.Context) ([]string, error) {
	repos, err := s.bs.Repositories()
	return repos, mapErr(err)
}

func (s *LocalStore) StatBlob(_ context.Context, repo string, d oci.Digest) (int64, error) {
	n, err := s.bs.BlobLinked(repo, d)
	return n, mapErr(err)
}

func (s *LocalStore) OpenBlob(_ context.Context, repo string, d oci.Digest) (io.ReadSeekCloser, int64, error) {
	if _, err := s.bs.BlobLinked(repo, d); err != nil {
		return nil, 0, mapErr(err)
	}
	f, size, err := s.bs.Open(d)
	if err != nil {
		return nil, 0, mapErr(err)
	}
	return f, size, nil
}

func (s *LocalStore) DeleteBlob(_ context.Context, repo string, d oci.Digest) error {
	return mapErr(s.bs.UnlinkBlob(repo, d))
}

func (s *LocalStore) MountBlob(_ context.Context, repo, from string, d oci.Digest) (bool, error) {
	if _, err := s.bs.BlobLinked(from, d); err != nil {
		if errors.Is(err, blobstore.ErrBlobUnknown) || errors.Is(err, blobstore.ErrNameUnknown) {
			return false, nil
		}
		return false, mapErr(err)
	}
	if err := s.bs.LinkBlob(repo, d); err != nil {
		return false, mapErr(err)
	}
	return true, nil
}

func (s *LocalStore) PutBlob(_ context.Context, repo string, d oci.Digest, r io.Reader) (int64, error) {
	n, err := s.bs.Put(d, r, -1)
	if err != nil {
		return 0, mapErr(err)
	}
	return n, mapErr(s.bs.LinkBlob(repo, d))
}

func (s *LocalStore) NewUpload(context.Context, string) (Upload, error) {
	u, err := s.bs.NewUpload()
	if err != nil {
		return nil, mapErr(err)
	}
	return localUpload{u}, nil
}

func (s *LocalStore) GetUpload(_ context.Context, _ string, id string) (Upload, error) {
	u, err := s.bs.Upload(id)
	if err != nil {
		return nil, mapErr(err)
	}
	return localUpload{u}, nil
}

type localUpload struct{ u *blobstore.Upload }

func (l localUpload) ID() string    { return l.u.ID() }
func (l localUpload) Size() int64   { return l.u.Size() }
func (l localUpload) Cancel() error { return mapErr(l.u.Cancel()) }

// Append returns the bytes appended (blobstore returns the new total size).
func (l localUpload) Append(off int64, r io.Reader, max int64) (int64, error) {
	total, err := l.u.Append(off, r, max)
	if err != nil {
		return 0, mapErr(err)
	}
	return total - off, nil
}
func (l localUpload) Commit(repo string, d oci.Digest) (int64, error) {
	n, err := l.u.Commit(repo, d)
	return n, mapErr(err)
}
