package cache

import (
	"context"
	"errors"
	"io"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// errReadLocal is the one signal that a blob is, or has just become, a
// matter for local storage: a fill committed between the lookup and the
// open (blobFill found it stored, openFill found the temp file renamed),
// or a stored blob vanished between its link and its open (collected).
// readBlob answers it by looking in local storage again.
var errReadLocal = errors.New("blob changed state while being opened; read it from local storage")

// blobAttempts bounds readBlob's retries: each errReadLocal means the
// blob moved on (committed or collected), which happens once or twice.
const blobAttempts = 3

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
	_, size, err := s.readBlob(ctx, t, repo, d, false)
	return size, err
}

// OpenBlob serves from local storage (an *os.File: sendfile) or from the
// fill, streaming bytes as they arrive from the upstream.
func (s *Store) OpenBlob(ctx context.Context, repo string, d oci.Digest) (io.ReadSeekCloser, int64, error) {
	t, ok := s.match(repo)
	if !ok {
		return s.Local.OpenBlob(ctx, repo, d)
	}
	return s.readBlob(ctx, t, repo, d, true)
}

// readBlob finds d for repo in local storage or in its fill (starting one
// on a miss), retrying while the blob changes state under it (errReadLocal).
// With open false it only answers the size and returns no reader.
func (s *Store) readBlob(ctx context.Context, t target, repo string, d oci.Digest, open bool) (io.ReadSeekCloser, int64, error) {
	for range blobAttempts {
		r, size, err := s.tryBlob(ctx, t, repo, d, open)
		if !errors.Is(err, errReadLocal) {
			return r, size, err
		}
	}
	return nil, 0, errors.New("cache: blob kept changing state; retry")
}

// tryBlob is one attempt of readBlob.
func (s *Store) tryBlob(ctx context.Context, t target, repo string, d oci.Digest, open bool) (io.ReadSeekCloser, int64, error) {
	size, hit, err := s.cachedBlob(repo, d)
	if err != nil {
		return nil, 0, err
	}
	if hit {
		if !open {
			s.m.hits.WithLabelValues("blob").Inc()
			return nil, size, nil
		}
		f, size, err := s.blobs.Open(d)
		if errors.Is(err, blobstore.ErrBlobUnknown) {
			return nil, 0, errReadLocal // collected since cachedBlob looked
		}
		if err != nil {
			return nil, 0, err
		}
		s.m.hits.WithLabelValues("blob").Inc()
		return f, size, nil
	}
	var fl *fill
	if storage.PeerOnly(ctx) {
		// Another replica's request: only a fill under way here, never
		// a new one (nor a wait for one).
		if fl = s.peerFill(d); fl == nil {
			return nil, 0, errNotForPeer
		}
	} else if fl, err = s.blobFill(t, repo, d); err != nil {
		return nil, 0, err
	}
	if !open {
		// A HEAD needs only the size: the upstream's, known here once the
		// fill started, or announced by the replica that fills it.
		select {
		case <-fl.sized:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		fl.mu.Lock()
		state, ferr, size := fl.state, fl.err, fl.size
		fl.mu.Unlock()
		if state == failed {
			return nil, 0, ferr
		}
		if size >= 0 {
			return nil, size, nil
		}
	}
	r, size, err := openFill(ctx, fl)
	if err != nil {
		return nil, 0, err
	}
	if !open {
		r.Close()
		return nil, size, nil
	}
	return r, size, nil
}
