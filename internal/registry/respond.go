package registry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// recorder remembers the status and counts body bytes. It forwards ReadFrom
// so that ServeContent over an *os.File still reaches sendfile.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(r.ResponseWriter, src)
	}
	r.bytes += n
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// writeErr answers with an OCI error document. err is either an *oci.Error
// (sent as is) or a storage error, mapped here; anything unrecognised is a
// 500 whose cause goes to the log only.
func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	e := s.toOCI(r, err)
	body := oci.Body(e)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.HTTPStatus())
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

func (s *Server) toOCI(r *http.Request, err error) *oci.Error {
	var e *oci.Error
	var nf *storage.NotFoundUpstreamError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &nf):
		return oci.NewError(nf.Code, "")
	case errors.Is(err, storage.ErrManifestInvalid):
		return oci.NewError(oci.CodeManifestInvalid, "")
	case errors.Is(err, storage.ErrNameInvalid):
		return oci.NewError(oci.CodeNameInvalid, "")
	case errors.Is(err, storage.ErrBlobUnknown):
		return oci.NewError(oci.CodeBlobUnknown, "")
	case errors.Is(err, storage.ErrManifestUnknown):
		return oci.NewError(oci.CodeManifestUnknown, "")
	case errors.Is(err, storage.ErrNameUnknown):
		return oci.NewError(oci.CodeNameUnknown, "")
	case errors.Is(err, storage.ErrUploadUnknown):
		return oci.NewError(oci.CodeBlobUploadUnknown, "")
	case errors.Is(err, storage.ErrDigestMismatch):
		return oci.NewError(oci.CodeDigestInvalid, "")
	case errors.Is(err, storage.ErrRangeInvalid):
		return oci.NewError(oci.CodeBlobUploadInvalid, "chunk does not start where the upload ends; GET the upload for its current range").WithStatus(http.StatusRequestedRangeNotSatisfiable)
	case errors.Is(err, storage.ErrTooLarge):
		return oci.NewError(oci.CodeSizeInvalid, "content is larger than allowed").WithStatus(http.StatusRequestEntityTooLarge)
	case errors.Is(err, errBodyRead):
		return oci.NewError(oci.CodeBlobUploadInvalid, "request body ended before its declared length")
	case errors.Is(err, storage.ErrStorageUnavailable):
		s.log.Warn("storage unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		return oci.NewError(oci.CodeUnavailable, "registry storage unavailable: "+err.Error()+"; retry when it is back")
	case errors.Is(err, context.Canceled):
		return oci.NewError(oci.CodeUnavailable, "request canceled").WithStatus(499)
	}
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return &oci.Error{Code: "UNKNOWN", Message: "internal error; see the registry log", Status: http.StatusInternalServerError}
}

// errBodyRead marks a client body that ended early or broke.
var errBodyRead = errors.New("reading request body")
