package registry

import (
	"context"
	"errors"
	"io"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// LocalStore implements Store over a blobstore on local disk: a plain
// registry with no upstream.
type LocalStore struct {
	bs *blobstore.Store
}

var (
	_ storage.Store  = (*LocalStore)(nil)
	_ storage.Upload = (*blobstore.Upload)(nil)
)

// NewLocalStore wraps bs.
func NewLocalStore(bs *blobstore.Store) *LocalStore { return &LocalStore{bs: bs} }

func (s *LocalStore) GetManifest(_ context.Context, repo string, ref oci.Reference) (storage.ManifestRecord, error) {
	return s.bs.GetManifest(repo, ref.String())
}

func (s *LocalStore) StatManifest(_ context.Context, repo string, ref oci.Reference) (oci.Descriptor, error) {
	d, mt, size, err := s.bs.StatManifest(repo, ref.String())
	return oci.Descriptor{MediaType: mt, Digest: d, Size: size}, err
}

func (s *LocalStore) PutManifest(_ context.Context, repo, tag string, m storage.ManifestRecord) error {
	return s.bs.PutManifest(repo, m, tag)
}

func (s *LocalStore) DeleteManifest(_ context.Context, repo string, d oci.Digest) error {
	return s.bs.DeleteManifest(repo, d)
}

func (s *LocalStore) DeleteTag(_ context.Context, repo, tag string) error {
	return s.bs.DeleteTag(repo, tag)
}

func (s *LocalStore) Tags(_ context.Context, repo string) ([]string, error) { return s.bs.Tags(repo) }

func (s *LocalStore) Referrers(_ context.Context, repo string, subject oci.Digest) ([]oci.Descriptor, error) {
	refs, err := s.bs.Referrers(repo, subject)
	if errors.Is(err, storage.ErrNameUnknown) {
		return nil, nil // the referrers API never answers 404
	}
	return refs, err
}

func (s *LocalStore) Repositories(context.Context) ([]string, error) { return s.bs.Repositories() }

func (s *LocalStore) StatBlob(_ context.Context, repo string, d oci.Digest) (int64, error) {
	return s.bs.BlobLinked(repo, d)
}

func (s *LocalStore) OpenBlob(_ context.Context, repo string, d oci.Digest) (io.ReadSeekCloser, int64, error) {
	if _, err := s.bs.BlobLinked(repo, d); err != nil {
		return nil, 0, err
	}
	f, size, err := s.bs.Open(d)
	if err != nil {
		return nil, 0, err
	}
	return f, size, nil
}

func (s *LocalStore) DeleteBlob(_ context.Context, repo string, d oci.Digest) error {
	return s.bs.UnlinkBlob(repo, d)
}

func (s *LocalStore) MountBlob(_ context.Context, repo, from string, d oci.Digest) (bool, error) {
	if _, err := s.bs.BlobLinked(from, d); err != nil {
		if errors.Is(err, storage.ErrBlobUnknown) || errors.Is(err, storage.ErrNameUnknown) {
			return false, nil
		}
		return false, err
	}
	return true, s.bs.LinkBlob(repo, d)
}

func (s *LocalStore) PutBlob(_ context.Context, repo string, d oci.Digest, r io.Reader) (int64, error) {
	n, err := s.bs.Put(d, r, -1)
	if err != nil {
		return 0, err
	}
	return n, s.bs.LinkBlob(repo, d)
}

func (s *LocalStore) NewUpload(context.Context, string) (storage.Upload, error) {
	u, err := s.bs.NewUpload()
	if err != nil {
		return nil, err // never a typed nil in the interface
	}
	return u, nil
}

func (s *LocalStore) GetUpload(_ context.Context, _ string, id string) (storage.Upload, error) {
	u, err := s.bs.Upload(id)
	if err != nil {
		return nil, err
	}
	return u, nil
}
