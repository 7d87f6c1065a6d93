package storage

import (
	"errors"
	"fmt"

	"github.com/airlockdev/airlock/internal/oci"
)

// The contract's errors. A Store wraps them with %w and context; test with
// errors.Is. internal/blobstore reports these same values.
var (
	// ErrBlobUnknown: the blob does not exist, or is not linked in the repository.
	ErrBlobUnknown = errors.New("blob unknown")
	// ErrManifestUnknown: no such manifest revision or tag in the repository.
	ErrManifestUnknown = errors.New("manifest unknown")
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

// Validation errors come from internal/oci; they are re-exported so a
// Store's callers need only one set of sentinels.
var (
	ErrNameInvalid     = oci.ErrNameInvalid     // repository name outside the OCI grammar
	ErrDigestInvalid   = oci.ErrDigestInvalid   // malformed digest
	ErrManifestInvalid = oci.ErrManifestInvalid // a ManifestRecord that cannot be stored (e.g. bad media type)
)

// ErrNotFoundUpstream matches every *NotFoundUpstreamError.
var ErrNotFoundUpstream = errors.New("not found upstream")

// NotFoundUpstreamError is a pull-through store's answer for content its
// upstream said does not exist. It is not a local miss (it matches none of
// ErrBlobUnknown, ErrManifestUnknown), so a caller never takes it for
// "read it from local storage"; the registry answers it with Code.
type NotFoundUpstreamError struct {
	Code     oci.Code // oci.CodeBlobUnknown or oci.CodeManifestUnknown
	What     string   // the blob's digest, or repo:tag / repo@digest
	Upstream string   // host/repository asked
}

// NotFoundUpstream returns the error for what, which upstream said it does
// not have; code is the OCI code a client gets for it.
func NotFoundUpstream(code oci.Code, what, upstream string) error {
	return &NotFoundUpstreamError{Code: code, What: what, Upstream: upstream}
}

func (e *NotFoundUpstreamError) Error() string {
	return fmt.Sprintf("%s not found in upstream %s", e.What, e.Upstream)
}

// Is makes errors.Is(err, ErrNotFoundUpstream) true.
func (e *NotFoundUpstreamError) Is(target error) bool { return target == ErrNotFoundUpstream }
