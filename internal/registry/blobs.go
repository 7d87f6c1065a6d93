package registry

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/airlockdev/airlock/internal/oci"
)

func parseBlobDigest(arg string) (oci.Digest, *oci.Error) {
	d, err := oci.ParseDigest(arg)
	if err != nil {
		return "", oci.NewError(oci.CodeDigestInvalid, err.Error())
	}
	return d, nil
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, repo, arg string) {
	d, oe := parseBlobDigest(arg)
	if oe != nil {
		s.writeErr(w, r, oe)
		return
	}
	h := w.Header()
	if r.Method == http.MethodHead {
		size, err := s.store.StatBlob(r.Context(), repo, d)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Docker-Content-Digest", string(d))
		h.Set("Accept-Ranges", "bytes")
		h.Set("ETag", `"`+string(d)+`"`)
		cacheForever(h)
		w.WriteHeader(http.StatusOK)
		return
	}
	if s.redir != nil && s.redirectBlob(w, r, repo, d) {
		return
	}
	f, size, err := s.store.OpenBlob(r.Context(), repo, d)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	defer f.Close()
	if err := awaitVerified(r, f, size); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if p, ok := f.(interface{ Prefetch(int64) error }); ok {
		// Object storage: ask for the bytes before any status is written,
		// so a storage that is down answers UNAVAILABLE, not a cut body.
		if err := p.Prefetch(firstOffset(r.Header.Get("Range"), size)); err != nil {
			s.writeErr(w, r, err)
			return
		}
	}
	content := io.ReadSeeker(f)
	var watched *readErr
	if _, isFile := f.(*os.File); !isFile {
		// A stream that may fail midway (a cache fill): remember the
		// failure, because ServeContent swallows it.
		watched = &readErr{ReadSeeker: f}
		content = watched
	}
	// Content-Type set before ServeContent so it does not read the start of
	// the blob to sniff one; the body then goes through sendfile when f is
	// an *os.File and the connection is plain TCP.
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", string(d))
	h.Set("ETag", `"`+string(d)+`"`)
	cacheForever(h)
	if wt, ok := f.(io.WriterTo); ok && watched != nil && plainGet(r) {
		// A stream (a cache fill) asked for whole: send it with its own
		// WriteTo, which reaches sendfile on plain TCP; ServeContent would
		// hide it behind an io.LimitedReader and copy through user space.
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Accept-Ranges", "bytes")
		w.WriteHeader(http.StatusOK)
		if _, err := wt.WriteTo(w); err != nil {
			s.log.Warn("blob stream failed; aborting the response", keyRepo, repo, "digest", string(d), "err", err)
			panic(http.ErrAbortHandler)
		}
		return
	}
	http.ServeContent(w, r, "", zeroTime, content)
	if watched != nil && watched.err != nil {
		// The client must never take a truncated body for a whole one:
		// abort the connection (HTTP/1) or reset the stream (HTTP/2).
		s.log.Warn("blob stream failed; aborting the response", keyRepo, repo, "digest", string(d), "err", watched.err)
		panic(http.ErrAbortHandler)
	}
}

// firstOffset is where the body of a response to a Range header starts
// (its first range; 0 without one or when it does not parse: the prefetch
// is only a head start).
func firstOffset(rng string, size int64) int64 {
	spec, ok := strings.CutPrefix(rng, "bytes=")
	if !ok {
		return 0
	}
	first, _, _ := strings.Cut(spec, ",")
	start, end, ok := strings.Cut(strings.TrimSpace(first), "-")
	if !ok {
		return 0
	}
	if start == "" { // suffix range: the last N bytes
		n, err := strconv.ParseInt(end, 10, 64)
		if err != nil || n <= 0 {
			return 0
		}
		return max(size-n, 0)
	}
	n, err := strconv.ParseInt(start, 10, 64)
	if err != nil || n < 0 || n >= size {
		return 0
	}
	return n
}

// redirectBlob answers a GET of a blob the repository holds with 307 to a
// signed URL of the object storage (registry.storage.redirect). It reports
// false, having written nothing, when the blob is not there yet or no URL
// can be signed: the caller streams it.
func (s *Server) redirectBlob(w http.ResponseWriter, r *http.Request, repo string, d oci.Digest) bool {
	if _, err := s.store.StatBlob(r.Context(), repo, d); err != nil {
		return false
	}
	u, err := s.redir(r.Context(), d)
	if err != nil {
		s.log.Debug("blob not redirected; streaming it", keyRepo, repo, "digest", string(d), "err", err)
		return false
	}
	h := w.Header()
	h.Set("Location", u)
	h.Set("Docker-Content-Digest", string(d))
	h.Set("Cache-Control", "no-store") // the URL expires
	w.WriteHeader(http.StatusTemporaryRedirect)
	return true
}

// readErr remembers the first read error other than EOF.
type readErr struct {
	io.ReadSeeker
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.ReadSeeker.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request, repo, arg string) {
	d, oe := parseBlobDigest(arg)
	if oe != nil {
		s.writeErr(w, r, oe)
		return
	}
	if err := s.store.DeleteBlob(r.Context(), repo, d); err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// plainGet reports whether r asks for a whole body unconditionally: no
// Range and no conditional header, so the answer is 200 with every byte.
func plainGet(r *http.Request) bool {
	for _, k := range []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if r.Header.Get(k) != "" {
			return false
		}
	}
	return true
}
