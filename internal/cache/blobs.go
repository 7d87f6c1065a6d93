package cache

import (
	"context"
	"errors"
	"io"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
)

// cachedBlob serves d from local storage when it is there: linked into repo
// already, or stored for another repository (content addressed, so it is
// linked into repo too). ok is false for a miss.
func (s *Store) cachedBlob(repo string, d oci.Digest) (size int64, ok bool, err error) {
	size, err = s.blobs.BlobLinked(repo, d)
	if err == nil {
		s.blobs.TouchLink(repo, d) // least recently used goes first under a quota
		return size, true, nil
	}
	if !errors.Is(err, blobstore.ErrBlobUnknown) && !errors.Is(err, blobstore.ErrNameUnknown) {
		return 0, false, err
	}
	if size, err = s.blobs.Stat(d); err != nil {
		if errors.Is(err, blobstore.ErrBlobUnknown) {
			return 0, false, nil
		}
		return 0, false, err
	}
	if err := s.blobs.LinkBlob(repo, d); err != nil {
		if errors.Is(err, blobstore.ErrBlobUnknown) {
			return 0, false, nil // collected meanwhile: fetch again
		}
		return 0, false, err
	}
	return size, true, nil
}

// StatBlob answers from local storage, or starts the fill (a HEAD is
// almost always followed by the GET) and answers with the upstream's size.
func (s *Store) StatBlob(ctx context.Context, repo string, d oci.Digest) (int64, error) {
	t, ok := s.match(repo)
	if !ok {
		return s.Local.StatBlob(ctx, repo, d)
	}
	if size, hit, err := s.cachedBlob(repo, d); hit || err != nil {
		if hit {
			s.m.hits.WithLabelValues("blob").Inc()
		}
		return size, err
	}
	for attempt := 0; attempt < 3; attempt++ {
		r, size, err := s.readFill(ctx, t, repo, d)
		if errors.Is(err, errFillRaced) {
			if size, hit, err := s.cachedBlob(repo, d); hit || err != nil {
				return size, err
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		r.Close()
		return size, nil
	}
	return 0, errors.New("cache: blob kept changing state; retry")
}

// OpenBlob serves from local storage (an *os.File: sendfile) or from the
// fill, streaming bytes as they arrive from the upstream.
func (s *Store) OpenBlob(ctx context.Context, repo string, d oci.Digest) (io.ReadSeekCloser, int64, error) {
	t, ok := s.match(repo)
	if !ok {
		return s.Local.OpenBlob(ctx, repo, d)
	}
	for attempt := 0; attempt < 3; attempt++ {
		if _, hit, err := s.cachedBlob(repo, d); err != nil {
			return nil, 0, err
		} else if hit {
			f, size, err := s.blobs.Open(d)
			if err == nil {
				s.m.hits.WithLabelValues("blob").Inc()
				return f, size, nil
			}
			if !errors.Is(err, blobstore.ErrBlobUnknown) {
				return nil, 0, err
			}
			continue
		}
		r, size, err := s.readFill(ctx, t, repo, d)
		if errors.Is(err, errFillRaced) {
			continue // committed while we opened it: serve the blob
		}
		return r, size, err
	}
	return nil, 0, errors.New("cache: blob kept changing state; retry")
}

func (s *Store) readFill(ctx context.Context, t target, repo string, d oci.Digest) (io.ReadSeekCloser, int64, error) {
	f := s.blobFill(t, repo, d)
	if f == nil {
		return nil, 0, errFillRaced
	}
	r, size, err := openFill(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	return r, size, nil
}
