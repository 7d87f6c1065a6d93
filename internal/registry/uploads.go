package registry

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

func uploadLocation(repo, id string) string { return "/v2/" + repo + "/blobs/uploads/" + id }

// setUploadHeaders describes the upload's state: Location to continue at
// and Range of the bytes received so far.
func setUploadHeaders(h http.Header, repo string, u storage.Upload) {
	h.Set("Location", uploadLocation(repo, u.ID()))
	h.Set("Docker-Upload-UUID", u.ID())
	end := u.Size() - 1
	if end < 0 {
		end = 0
	}
	h.Set("Range", "0-"+strconv.FormatInt(end, 10))
	h.Set("Content-Length", "0")
}

func blobCreated(w http.ResponseWriter, repo string, d oci.Digest) {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/"+string(d))
	h.Set("Docker-Content-Digest", string(d))
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// startUpload handles POST /v2/<name>/blobs/uploads/: a cross-repository
// mount (?mount=&from=), a monolithic upload (?digest=), or a new session.
func (s *Server) startUpload(w http.ResponseWriter, r *http.Request, repo string) {
	q := r.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		d, oe := parseBlobDigest(mount)
		if oe != nil {
			s.writeErr(w, r, oe)
			return
		}
		if from := q.Get("from"); from != "" {
			if _, err := oci.ParseName(from); err != nil {
				s.writeErr(w, r, oci.NewError(oci.CodeNameInvalid, "from: "+err.Error()))
				return
			}
			ok, err := s.store.MountBlob(r.Context(), repo, from, d)
			if err != nil {
				s.writeErr(w, r, err)
				return
			}
			if ok {
				blobCreated(w, repo, d)
				return
			}
		}
		// Not mountable: fall through to an ordinary upload session, as the
		// spec asks.
	}
	if dig := q.Get("digest"); dig != "" {
		d, oe := parseBlobDigest(dig)
		if oe != nil {
			s.writeErr(w, r, oe)
			return
		}
		n, err := s.store.PutBlob(r.Context(), repo, d, bodyReader(r))
		s.metrics.BytesReceived.Add(float64(n))
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		blobCreated(w, repo, d)
		return
	}
	u, err := s.store.NewUpload(r.Context(), repo)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	setUploadHeaders(w.Header(), repo, u)
	w.WriteHeader(http.StatusAccepted)
}

// bodyReader wraps the request body so a body that ends early is reported
// as a client error rather than an internal one.
func bodyReader(r *http.Request) io.Reader { return errMarkReader{r.Body} }

type errMarkReader struct{ r io.Reader }

func (e errMarkReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", errBodyRead, err)
	}
	return n, err
}

func (s *Server) getUpload(w http.ResponseWriter, r *http.Request, repo, id string) (storage.Upload, bool) {
	u, err := s.store.GetUpload(r.Context(), repo, id)
	if err != nil {
		s.writeErr(w, r, err)
		return nil, false
	}
	return u, true
}

func (s *Server) uploadStatus(w http.ResponseWriter, r *http.Request, repo, id string) {
	u, ok := s.getUpload(w, r, repo, id)
	if !ok {
		return
	}
	setUploadHeaders(w.Header(), repo, u)
	w.WriteHeader(http.StatusNoContent)
}

// contentRange parses "start-end" (also accepting a "bytes " or "bytes="
// prefix and a "/total" suffix).
func contentRange(v string) (start, end int64, err error) {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(strings.TrimPrefix(v, "bytes="), "bytes ")
	if i := strings.IndexByte(v, '/'); i >= 0 {
		v = v[:i]
	}
	a, b, ok := strings.Cut(v, "-")
	if !ok {
		return 0, 0, fmt.Errorf("Content-Range %q is not start-end", v)
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, fmt.Errorf("Content-Range %q is not start-end", v)
	}
	return start, end, nil
}

// appendBody writes the request body to u, honouring Content-Range and
// Content-Length. It answers the error itself and returns false on failure.
func (s *Server) appendBody(w http.ResponseWriter, r *http.Request, u storage.Upload) bool {
	offset := u.Size()
	max := r.ContentLength // -1 when unknown
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, end, err := contentRange(cr)
		if err != nil {
			s.writeErr(w, r, oci.NewError(oci.CodeBlobUploadInvalid, err.Error()).WithStatus(http.StatusRequestedRangeNotSatisfiable))
			return false
		}
		if start != offset {
			s.writeErr(w, r, oci.NewError(oci.CodeBlobUploadInvalid,
				fmt.Sprintf("chunk starts at %d but the upload holds %d bytes; GET the upload for its range", start, offset)).
				WithStatus(http.StatusRequestedRangeNotSatisfiable))
			return false
		}
		n := end - start + 1
		if max >= 0 && max != n {
			s.writeErr(w, r, oci.NewError(oci.CodeBlobUploadInvalid,
				fmt.Sprintf("Content-Range covers %d bytes but Content-Length is %d", n, max)).
				WithStatus(http.StatusRequestedRangeNotSatisfiable))
			return false
		}
		max = n
	}
	total, err := u.Append(offset, bodyReader(r), max)
	n := total - offset
	if err != nil {
		n = 0
	}
	s.metrics.BytesReceived.Add(float64(n))
	if err == nil && max >= 0 && n != max {
		err = fmt.Errorf("%w: got %d of %d bytes", errBodyRead, n, max)
	}
	if err != nil {
		s.writeErr(w, r, err)
		return false
	}
	return true
}

func (s *Server) patchUpload(w http.ResponseWriter, r *http.Request, repo, id string) {
	u, ok := s.getUpload(w, r, repo, id)
	if !ok || !s.appendBody(w, r, u) {
		return
	}
	setUploadHeaders(w.Header(), repo, u)
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) finishUpload(w http.ResponseWriter, r *http.Request, repo, id string) {
	dig := r.URL.Query().Get("digest")
	if dig == "" {
		s.writeErr(w, r, oci.NewError(oci.CodeDigestInvalid, "finish an upload with PUT …?digest=<algorithm:hex>"))
		return
	}
	d, oe := parseBlobDigest(dig)
	if oe != nil {
		s.writeErr(w, r, oe)
		return
	}
	u, ok := s.getUpload(w, r, repo, id)
	if !ok {
		return
	}
	if r.ContentLength != 0 && !s.appendBody(w, r, u) {
		return
	}
	if _, err := u.Commit(repo, d); err != nil {
		s.writeErr(w, r, err)
		return
	}
	blobCreated(w, repo, d)
}

func (s *Server) cancelUpload(w http.ResponseWriter, r *http.Request, repo, id string) {
	u, ok := s.getUpload(w, r, repo, id)
	if !ok {
		return
	}
	if err := u.Cancel(); err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
}
