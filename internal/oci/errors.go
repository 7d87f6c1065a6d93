package oci

import (
	"encoding/json"
	"net/http"
)

// Code is an OCI distribution error code.
type Code string

// The error codes of the distribution spec, plus UNAVAILABLE (distribution's
// code for a service that cannot answer now, used for an unreachable upstream).
const (
	CodeBlobUnknown         Code = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   Code = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   Code = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       Code = "DIGEST_INVALID"
	CodeManifestBlobUnknown Code = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     Code = "MANIFEST_INVALID"
	CodeManifestUnknown     Code = "MANIFEST_UNKNOWN"
	CodeNameInvalid         Code = "NAME_INVALID"
	CodeNameUnknown         Code = "NAME_UNKNOWN"
	CodeSizeInvalid         Code = "SIZE_INVALID"
	CodeUnauthorized        Code = "UNAUTHORIZED"
	CodeDenied              Code = "DENIED"
	CodeUnsupported         Code = "UNSUPPORTED"
	CodeTooManyRequests     Code = "TOOMANYREQUESTS"
	CodeUnavailable         Code = "UNAVAILABLE"
)

// codeInfo is the one table of wire errors: default status and message.
var codeInfo = map[Code]struct {
	status  int
	message string
}{
	CodeBlobUnknown:         {http.StatusNotFound, "blob unknown to registry"},
	CodeBlobUploadInvalid:   {http.StatusBadRequest, "blob upload invalid"},
	CodeBlobUploadUnknown:   {http.StatusNotFound, "blob upload unknown to registry"},
	CodeDigestInvalid:       {http.StatusBadRequest, "provided digest did not match uploaded content"},
	CodeManifestBlobUnknown: {http.StatusBadRequest, "manifest references a manifest or blob unknown to registry"},
	CodeManifestInvalid:     {http.StatusBadRequest, "manifest invalid"},
	CodeManifestUnknown:     {http.StatusNotFound, "manifest unknown to registry"},
	CodeNameInvalid:         {http.StatusBadRequest, "invalid repository name"},
	CodeNameUnknown:         {http.StatusNotFound, "repository name not known to registry"},
	CodeSizeInvalid:         {http.StatusBadRequest, "provided length did not match content length"},
	CodeUnauthorized:        {http.StatusUnauthorized, "authentication required"},
	CodeDenied:              {http.StatusForbidden, "requested access to the resource is denied"},
	CodeUnsupported:         {http.StatusMethodNotAllowed, "the operation is unsupported"},
	CodeTooManyRequests:     {http.StatusTooManyRequests, "too many requests"},
	CodeUnavailable:         {http.StatusServiceUnavailable, "service unavailable"},
}

// Error is one OCI error as sent to a client. Message and Detail must never
// carry internals (paths, upstream addresses, Go errors).
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
	// Status overrides the code's default HTTP status when non-zero
	// (e.g. 416 for BLOB_UPLOAD_INVALID on a bad range, 413 for an oversize manifest).
	Status int `json:"-"`
}

// NewError returns an error with the code's default message when msg is empty.
func NewError(code Code, msg string) *Error {
	if msg == "" {
		msg = codeInfo[code].message
	}
	return &Error{Code: code, Message: msg}
}

// WithStatus returns a copy with a specific HTTP status.
func (e *Error) WithStatus(status int) *Error { c := *e; c.Status = status; return &c }

// WithDetail returns a copy carrying detail.
func (e *Error) WithDetail(detail any) *Error { c := *e; c.Detail = detail; return &c }

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// HTTPStatus is the status to answer with.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	if info, ok := codeInfo[e.Code]; ok {
		return info.status
	}
	return http.StatusInternalServerError
}

// Body renders the errors document {"errors":[…]}.
func Body(errs ...*Error) []byte {
	b, err := json.Marshal(struct {
		Errors []*Error `json:"errors"`
	}{errs})
	if err != nil { // only possible with an unmarshalable Detail
		return []byte(`{"errors":[{"code":"UNKNOWN","message":"unknown error"}]}`)
	}
	return b
}
