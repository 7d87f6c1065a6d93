package blobstore

import (
	"fmt"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// Errors the registry maps to OCI error codes: the storage contract's
// sentinels, the same values, so errors.Is works with either name. Every
// error the store returns for one of these conditions wraps the sentinel
// with %w and context, so test with errors.Is.
var (
	// ErrBlobUnknown: the blob does not exist, or is not linked in the repository.
	ErrBlobUnknown = storage.ErrBlobUnknown
	// ErrManifestUnknown: no such manifest revision or tag in the repository.
	ErrManifestUnknown = storage.ErrManifestUnknown
	// ErrTagUnknown: the tag does not exist. It also matches ErrManifestUnknown.
	ErrTagUnknown = fmt.Errorf("tag unknown: %w", ErrManifestUnknown)
	// ErrNameUnknown: the repository has no manifest, tag or blob link at all.
	ErrNameUnknown = storage.ErrNameUnknown
	// ErrUploadUnknown: no such upload (never existed, finished, cancelled,
	// purged, or an id that is not one this store issues).
	ErrUploadUnknown = storage.ErrUploadUnknown
	// ErrDigestMismatch: the bytes do not hash to the digest given.
	ErrDigestMismatch = storage.ErrDigestMismatch
	// ErrRangeInvalid: an append at an offset other than the upload's size,
	// or while another request is appending to the same upload.
	ErrRangeInvalid = storage.ErrRangeInvalid
	// ErrTooLarge: more bytes than the caller's limit.
	ErrTooLarge = storage.ErrTooLarge
)

// Validation errors come from internal/oci; they are re-exported so callers
// of this package need only one set of sentinels.
var (
	ErrNameInvalid       = oci.ErrNameInvalid       // repository name outside the OCI grammar
	ErrReferenceInvalid  = oci.ErrReferenceInvalid  // tag outside the OCI grammar
	ErrDigestInvalid     = oci.ErrDigestInvalid     // malformed digest
	ErrDigestUnsupported = oci.ErrDigestUnsupported // algorithm other than sha256/sha512
	ErrManifestInvalid   = oci.ErrManifestInvalid   // a ManifestRecord that cannot be stored (e.g. bad media type)
)
