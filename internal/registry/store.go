package registry

import (
	"context"
	"io"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
)

// Store is everything the HTTP API needs from storage. Its signatures use
// only oci and blobstore types, so the pull-through cache can implement it
// without importing this package.
//
// Implementations report the blobstore sentinel errors (ErrBlobUnknown,
// ErrManifestUnknown, ErrNameUnknown, ErrUploadUnknown, ErrDigestMismatch,
// ErrRangeInvalid, ErrTooLarge) or *oci.Error values, wrapped with context;
// anything else is answered as a 500 and logged, never shown to the client.
// repo is always a name validated by oci.ParseName.
type Store interface {
	GetManifest(ctx context.Context, repo string, ref oci.Reference) (blobstore.ManifestRecord, error)
	// StatManifest returns the manifest's digest, media type and size.
	StatManifest(ctx context.Context, repo string, ref oci.Reference) (oci.Descriptor, error)
	// PutManifest stores m under its digest and points tag (when not empty)
	// at it. The caller has validated m and checked that what it references
	// exists in repo.
	PutManifest(ctx context.Context, repo, tag string, m blobstore.ManifestRecord) error
	DeleteManifest(ctx context.Context, repo string, d oci.Digest) error
	DeleteTag(ctx context.Context, repo, tag string) error
	Tags(ctx context.Context, repo string) ([]string, error)
	Referrers(ctx context.Context, repo string, subject oci.Digest) ([]oci.Descriptor, error)
	Repositories(ctx context.Context) ([]string, error)

	// StatBlob returns the size of a blob linked into repo.
	StatBlob(ctx context.Context, repo string, d oci.Digest) (int64, error)
	// OpenBlob returns the blob's content and size. When the reader is an
	// *os.File, plain-HTTP responses use sendfile. Content that has not yet
	// verified against d (a cache fill) implements pendingContent, and its
	// reads return only verified bytes unless told StreamToEnd.
	OpenBlob(ctx context.Context, repo string, d oci.Digest) (io.ReadSeekCloser, int64, error)
	DeleteBlob(ctx context.Context, repo string, d oci.Digest) error
	// MountBlob links a blob that is linked in from into repo; false when
	// from does not have it.
	MountBlob(ctx context.Context, repo, from string, d oci.Digest) (bool, error)
	// PutBlob stores a whole blob in one request (monolithic upload).
	PutBlob(ctx context.Context, repo string, d oci.Digest, r io.Reader) (int64, error)

	// NewUpload and GetUpload give resumable uploads (blobstore semantics:
	// Append returns the upload's new total size).
	NewUpload(ctx context.Context, repo string) (*blobstore.Upload, error)
	GetUpload(ctx context.Context, repo, id string) (*blobstore.Upload, error)
}
