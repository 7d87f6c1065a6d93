package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// parseRef parses a manifest reference for a read or delete; a malformed
// tag cannot exist (404), a malformed digest is a client error (400).
func parseRef(arg string) (oci.Reference, *oci.Error) {
	ref, err := oci.ParseReference(arg)
	switch {
	case err == nil:
		return ref, nil
	case errors.Is(err, oci.ErrReferenceInvalid):
		return ref, oci.NewError(oci.CodeManifestUnknown, err.Error())
	default:
		return ref, oci.NewError(oci.CodeDigestInvalid, err.Error())
	}
}

func (s *Server) getManifest(w http.ResponseWriter, r *http.Request, repo, arg string) {
	ref, oe := parseRef(arg)
	if oe != nil {
		s.writeErr(w, r, oe)
		return
	}
	var desc oci.Descriptor
	var body []byte
	if r.Method == http.MethodHead {
		var err error
		if desc, err = s.store.StatManifest(r.Context(), repo, ref); err != nil {
			s.writeErr(w, r, err)
			return
		}
	} else {
		m, err := s.store.GetManifest(r.Context(), repo, ref)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		desc = oci.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: int64(len(m.Body))}
		body = m.Body
	}
	h := w.Header()
	h.Set("Content-Type", desc.MediaType)
	h.Set("Content-Length", strconv.FormatInt(desc.Size, 10))
	h.Set("Docker-Content-Digest", string(desc.Digest))
	h.Set("ETag", `"`+string(desc.Digest)+`"`)
	if ref.IsDigest() {
		cacheForever(h)
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, repo, arg string) {
	ref, err := oci.ParseReference(arg)
	if err != nil {
		if errors.Is(err, oci.ErrReferenceInvalid) {
			s.writeErr(w, r, oci.NewError(oci.CodeManifestInvalid, err.Error()))
		} else {
			s.writeErr(w, r, oci.NewError(oci.CodeDigestInvalid, err.Error()))
		}
		return
	}
	if r.ContentLength > oci.MaxManifestSize {
		s.writeErr(w, r, oversize(r.ContentLength))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, oci.MaxManifestSize+1))
	if err != nil {
		s.writeErr(w, r, fmt.Errorf("%w: %v", errBodyRead, err))
		return
	}
	if len(body) > oci.MaxManifestSize {
		s.writeErr(w, r, oversize(int64(len(body))))
		return
	}
	s.metrics.BytesReceived.Add(float64(len(body)))
	parsed, err := oci.ParseManifest(r.Header.Get("Content-Type"), body)
	if err != nil {
		if errors.Is(err, oci.ErrManifestTooLarge) {
			s.writeErr(w, r, oversize(int64(len(body))))
			return
		}
		s.writeErr(w, r, oci.NewError(oci.CodeManifestInvalid, err.Error()))
		return
	}
	alg := oci.Canonical
	if ref.IsDigest() {
		alg = ref.Digest.Algorithm()
	}
	d := alg.FromBytes(body)
	if ref.IsDigest() && d != ref.Digest {
		s.writeErr(w, r, oci.NewError(oci.CodeDigestInvalid, "the manifest's content does not match the digest in the URL"))
		return
	}
	if oe := s.checkReferences(r, repo, parsed); oe != nil {
		s.writeErr(w, r, oe)
		return
	}
	if err := s.store.PutManifest(r.Context(), repo, ref.Tag, storage.NewManifestRecord(d, parsed, body)); err != nil {
		s.writeErr(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/manifests/"+string(d))
	h.Set("Docker-Content-Digest", string(d))
	if parsed.Subject != nil {
		h.Set("OCI-Subject", string(parsed.Subject.Digest))
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func oversize(n int64) *oci.Error {
	return oci.NewError(oci.CodeSizeInvalid, fmt.Sprintf("manifest of %d bytes is over the %d byte limit", n, oci.MaxManifestSize)).
		WithStatus(http.StatusRequestEntityTooLarge)
}

// checkReferences answers MANIFEST_BLOB_UNKNOWN when the manifest points at
// a blob or child manifest that repo does not hold. Non-distributable
// layers (with URLs) are not expected to be in the registry.
func (s *Server) checkReferences(r *http.Request, repo string, m *oci.Manifest) *oci.Error {
	for _, d := range m.Layers {
		if len(d.URLs) > 0 && (strings.Contains(d.MediaType, "nondistributable") || strings.Contains(d.MediaType, "foreign")) {
			continue
		}
		if _, err := s.store.StatBlob(r.Context(), repo, d.Digest); err != nil {
			return s.missingRef(r, err, "layer", d.Digest)
		}
	}
	if m.Config != nil {
		if _, err := s.store.StatBlob(r.Context(), repo, m.Config.Digest); err != nil {
			return s.missingRef(r, err, "config", m.Config.Digest)
		}
	}
	for _, d := range m.Manifests {
		if _, err := s.store.StatManifest(r.Context(), repo, oci.Reference{Digest: d.Digest}); err != nil {
			return s.missingRef(r, err, "manifest", d.Digest)
		}
	}
	return nil
}

func (s *Server) missingRef(r *http.Request, err error, what string, d oci.Digest) *oci.Error {
	if errors.Is(err, storage.ErrBlobUnknown) || errors.Is(err, storage.ErrManifestUnknown) || errors.Is(err, storage.ErrNameUnknown) ||
		errors.Is(err, storage.ErrNotFoundUpstream) {
		return oci.NewError(oci.CodeManifestBlobUnknown, fmt.Sprintf("%s %s is not in this repository; push it first", what, d)).
			WithDetail(map[string]string{"digest": string(d)})
	}
	return s.toOCI(r, err)
}

func (s *Server) deleteManifest(w http.ResponseWriter, r *http.Request, repo, arg string) {
	ref, oe := parseRef(arg)
	if oe != nil {
		s.writeErr(w, r, oe)
		return
	}
	var err error
	if ref.IsDigest() {
		err = s.store.DeleteManifest(r.Context(), repo, ref.Digest)
	} else {
		err = s.store.DeleteTag(r.Context(), repo, ref.Tag)
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}
