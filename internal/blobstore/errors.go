package blobstore

import (
	"errors"
	"fmt"

	"github.com/airlockdev/airlock/internal/oci"
)

// Errors the registry maps to OCI error codes. Every error the store returns
// for one of these conditions wraps the sentinel with %w and context, so test
// with errors.Is.
var (
	// ErrBlobUnknown: the blob does not exist, or is not linked in the repository.
	ErrBlobUnknown = errors.New("blob unknown")
	// ErrManifestUnknown: no such manifest revision or tag in the repository.
	ErrManifestUnknown = errors.New("manifest unknown")
	// ErrTagUnknown: the tag does not exist. It also matches ErrManifestUnknown.
	ErrTagUnknown = fmt.Errorf("tag unknown: %w", ErrManifestUnknown)
	// ErrNameUnknown: the repository has no manifest, tag or blob link at all.
	ErrNameUnknown = errors.New("repository name unknown")
	// ErrUploadUnknown: no such upload (never existed, finished, cancelled,
	// purged, or an id that is not one this store issues).
	ErrUploadUnknown = errors.New("upload unknown")
	// ErrDigestMismatch: the bytes do not hash to the digest given.
	ErrDigestMismatch = errors.New("content does not match digest")
	// ErrRangeInvalid: an append at an offset other than the upload's size,
	// or while another request is appending to the same upload.
	ErrRangeInvalid = errors.New("upload range invalid")
	// ErrTooLarge: more bytes than the caller's limit.
	ErrTooLarge = errors.New("content too large")
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
