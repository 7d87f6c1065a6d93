package registry

import (
	"context"
	"io"

	"github.com/airlockdev/airlock/internal/oci"
)

// Store is everything the HTTP API needs from storage. Implementations
// return the sentinel errors of this package (ErrBlobUnknown …) or *oci.Error
// values, wrapped with context; anything else is answered as a 500 and
// logged, never shown to the client.
//
// repo is always a name validated by oci.ParseName.
type Store interface {
	GetManifest(ctx context.Context, repo string, ref oci.Reference) (Manifest, error)
	StatManifest(ctx context.Context, repo string, ref oci.Reference) (Manifest, error) // Body may be nil
	// PutManifest stores m under its digest and points tag (when not empty)
	// at it. The caller has validated m and checked that what it references
	// exists in repo.
	PutManifest(ctx context.Context, repo, tag string, m Manifest) error
	DeleteManifest(ctx context.Context, repo string, d oci.Digest) error
	DeleteTag(ctx context.Context, repo, tag string) error
	Tags(ctx context.Context, repo string) ([]string, error)
	Referrers(ctx context.Context, repo string, subject oci.Digest) ([]oci.Descriptor, error)
	Repositories(ctx context.Context) ([]string, error)

	// StatBlob returns the size of a blob linked into repo.
	StatBlob(ctx context.Context, repo string, d oci.Digest) (int64, error)
	// OpenBlob returns the blob's content. When the reader is an *os.File,
	// plain-HTTP responses use sendfile.
	OpenBlob(ctx context.Context, repo string, d oci.Digest) (io.ReadSeekCloser, int64, error)
	DeleteBlob(ctx context.Context, repo string, d oci.Digest) error
	// MountBlob links a blob that is linked in from into repo; false when
	// from does not have it.
	MountBlob(ctx context.Context, repo, from string, d oci.Digest) (bool, error)
	// PutBlob stores a whole blob in one request (monolithic upload).
	PutBlob(ctx context.Context, repo string, d oci.Digest, r io.Reader) (int64, error)

	NewUpload(ctx context.Context, repo string) (Upload, error)
	GetUpload(ctx context.Context, repo, id string) (Upload, error)
}

// Upload is a resumable blob upload.
type Upload interface {
	ID() string
	Size() int64
	// Append writes r at offset, which must equal Size() (ErrRangeInvalid
	// otherwise), and returns the number of bytes appended. With
	// maxBytes >= 0, more bytes than that is an error. On any error the
	// upload is left as it was.
	Append(offset int64, r io.Reader, maxBytes int64) (int64, error)
	Commit(repo string, d oci.Digest) (int64, error)
	Cancel() error
}

// Manifest is a stored manifest.
type Manifest struct {
	Digest    oci.Digest
	MediaType string
	Size      int64
	Body      []byte
	// Parsed is set on PutManifest (the store indexes subjects from it).
	Parsed *oci.Manifest
}
