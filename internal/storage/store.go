package storage

import (
	"context"
	"io"

	"github.com/airlockdev/airlock/internal/oci"
)

// Store is everything the registry's HTTP API needs from storage. repo is
// always a name validated by oci.ParseName.
type Store interface {
	GetManifest(ctx context.Context, repo string, ref oci.Reference) (ManifestRecord, error)
	// StatManifest returns the manifest's digest, media type and size.
	StatManifest(ctx context.Context, repo string, ref oci.Reference) (oci.Descriptor, error)
	// PutManifest stores m under its digest and points tag (when not empty)
	// at it. The caller has validated m and checked that what it references
	// exists in repo.
	PutManifest(ctx context.Context, repo, tag string, m ManifestRecord) error
	DeleteManifest(ctx context.Context, repo string, d oci.Digest) error
	DeleteTag(ctx context.Context, repo, tag string) error
	Tags(ctx context.Context, repo string) ([]string, error)
	// Referrers lists the manifests in repo whose subject is subject; an
	// unknown repository or subject is an empty list, never an error.
	Referrers(ctx context.Context, repo string, subject oci.Digest) ([]oci.Descriptor, error)
	Repositories(ctx context.Context) ([]string, error)

	// StatBlob returns the size of a blob linked into repo.
	StatBlob(ctx context.Context, repo string, d oci.Digest) (int64, error)
	// OpenBlob returns the blob's content and size. When the reader is an
	// *os.File, plain-HTTP responses use sendfile. Content that has not yet
	// verified against d (a cache fill) also has the methods Verified and
	// StreamToEnd (the registry's pendingContent), and its reads return
	// only verified bytes unless told StreamToEnd.
	OpenBlob(ctx context.Context, repo string, d oci.Digest) (io.ReadSeekCloser, int64, error)
	DeleteBlob(ctx context.Context, repo string, d oci.Digest) error
	// MountBlob links a blob that is linked in from into repo; false when
	// from does not have it.
	MountBlob(ctx context.Context, repo, from string, d oci.Digest) (bool, error)
	// PutBlob stores a whole blob in one request (monolithic upload),
	// verified against d, and links it into repo.
	PutBlob(ctx context.Context, repo string, d oci.Digest, r io.Reader) (int64, error)

	// NewUpload and GetUpload give resumable uploads.
	NewUpload(ctx context.Context, repo string) (Upload, error)
	GetUpload(ctx context.Context, repo, id string) (Upload, error)
}

// Upload is one resumable blob upload. Every handle for one id serialises
// on the same upload: an Append while another runs fails with
// ErrRangeInvalid rather than waiting.
type Upload interface {
	// ID is the upload's opaque id, safe in a URL path.
	ID() string
	// Size is the number of bytes accepted so far.
	Size() int64
	// Append adds r at offset, which must equal Size (else ErrRangeInvalid),
	// and returns the upload's new total size. maxBytes < 0 means no limit;
	// more than maxBytes is ErrTooLarge. A failed append leaves the upload
	// as it was.
	Append(offset int64, r io.Reader, maxBytes int64) (int64, error)
	// Commit verifies the bytes against d (ErrDigestMismatch: nothing is
	// stored and the upload is gone), stores the blob, links it into repo,
	// ends the upload and returns the blob's size.
	Commit(repo string, d oci.Digest) (int64, error)
	// Cancel ends the upload and drops its bytes.
	Cancel() error
}
