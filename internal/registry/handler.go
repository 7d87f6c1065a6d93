package registry

import (
	"net/http"
	"strings"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// Log keys.
const (
	keyMethod   = "method"
	keyRoute    = "route"
	keyRepo     = "repo"
	keyStatus   = "status"
	keyBytes    = "bytes"
	keyDuration = "duration_ms"
	keyUser     = "user"
	keyRemote   = "remote"
)

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	rec := &recorder{ResponseWriter: w}
	rec.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rt := parseRoute(r.URL.Path)
	user := s.dispatch(rec, r, rt)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	s.metrics.Requests.WithLabelValues(rt.kind.String(), r.Method, statusLabel(rec.status)).Inc()
	s.metrics.BytesSent.Add(float64(rec.bytes))
	s.log.Info("request",
		keyMethod, r.Method, keyRoute, rt.kind.String(), keyRepo, rt.name, keyStatus, rec.status,
		keyBytes, rec.bytes, keyDuration, float64(s.now().Sub(start).Microseconds())/1000,
		keyUser, user, keyRemote, r.RemoteAddr)
}

func statusLabel(code int) string {
	const digits = "0123456789"
	if code < 100 || code > 999 {
		return "other"
	}
	return string([]byte{digits[code/100], digits[code/10%10], digits[code%10]})
}

// isPull reports whether the request only reads.
func isPull(r *http.Request, rt route) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && rt.kind != routeUpload
}

// dispatch authenticates, validates the path and calls the endpoint. It
// returns the authenticated user for the log.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, rt route) string {
	if rt.kind == routeUnknown {
		s.writeErr(w, r, oci.NewError(oci.CodeNameUnknown, "no such endpoint of the OCI distribution API").WithStatus(http.StatusNotFound))
		return ""
	}
	auth := s.auth.Load()
	user, res := auth.check(r, s.now())
	if u, ok := r.Context().Value(internalPullKey{}).(string); ok && isPull(r, rt) {
		user, res = u, authOK
	}
	if tok := r.Header.Get(storage.PeerHeader); tok != "" && s.peerAuth != nil {
		// Another replica: pulls only, served from what this replica
		// has, never from the upstream (storage.PeerOnly).
		user, res = "airlock-peer", authInvalid
		if isPull(r, rt) && s.peerAuth(r.Context(), tok) {
			res = authOK
			r = r.WithContext(storage.WithPeerOnly(r.Context()))
		}
	}
	switch {
	case res == authInvalid:
		s.metrics.AuthFailures.Inc()
		s.challenge(w, r, "invalid username or password")
		return user
	case res == authNone && rt.kind == routeBase && len(auth.users) > 0 && auth.anonymousPull:
		// Docker-style clients (skopeo, docker) send credentials only after
		// the version check is challenged; anonymous pulls still work, since
		// a client without credentials goes on without them.
		s.challenge(w, r, "authenticate to push; pulls work anonymously")
		return ""
	case res == authNone && !(isPull(r, rt) && auth.anonymousPull):
		if isPull(r, rt) {
			s.challenge(w, r, "authentication required to pull")
		} else {
			s.challenge(w, r, "authentication required to push or delete")
		}
		return ""
	}
	if strings.ContainsRune(r.URL.EscapedPath(), '%') {
		s.writeErr(w, r, oci.NewError(oci.CodeNameInvalid, "percent-encoded characters are not allowed in repository paths"))
		return user
	}
	if rt.kind == routeBase {
		s.handleBase(w, r)
		return user
	}
	if rt.kind == routeCatalog {
		s.handleCatalog(w, r)
		return user
	}
	if _, err := oci.ParseName(rt.name); err != nil {
		s.writeErr(w, r, oci.NewError(oci.CodeNameInvalid, err.Error()))
		return user
	}
	if ns := r.URL.Query().Get("ns"); ns != "" && s.resolve != nil {
		name, err := s.resolve.Resolve(rt.name, ns)
		if err != nil {
			s.writeErr(w, r, err)
			return user
		}
		rt.name = name
	}
	switch rt.kind {
	case routeTags:
		s.methods(w, r, map[string]http.HandlerFunc{"GET": func(w http.ResponseWriter, r *http.Request) { s.handleTags(w, r, rt.name) }})
	case routeManifest:
		s.methods(w, r, map[string]http.HandlerFunc{
			"GET":    func(w http.ResponseWriter, r *http.Request) { s.getManifest(w, r, rt.name, rt.arg) },
			"PUT":    func(w http.ResponseWriter, r *http.Request) { s.putManifest(w, r, rt.name, rt.arg) },
			"DELETE": func(w http.ResponseWriter, r *http.Request) { s.deleteManifest(w, r, rt.name, rt.arg) },
		})
	case routeBlob:
		s.methods(w, r, map[string]http.HandlerFunc{
			"GET":    func(w http.ResponseWriter, r *http.Request) { s.getBlob(w, r, rt.name, rt.arg) },
			"DELETE": func(w http.ResponseWriter, r *http.Request) { s.deleteBlob(w, r, rt.name, rt.arg) },
		})
	case routeUploadStart:
		s.methods(w, r, map[string]http.HandlerFunc{"POST": func(w http.ResponseWriter, r *http.Request) { s.startUpload(w, r, rt.name) }})
	case routeUpload:
		s.methods(w, r, map[string]http.HandlerFunc{
			"GET":    func(w http.ResponseWriter, r *http.Request) { s.uploadStatus(w, r, rt.name, rt.arg) },
			"PATCH":  func(w http.ResponseWriter, r *http.Request) { s.patchUpload(w, r, rt.name, rt.arg) },
			"PUT":    func(w http.ResponseWriter, r *http.Request) { s.finishUpload(w, r, rt.name, rt.arg) },
			"DELETE": func(w http.ResponseWriter, r *http.Request) { s.cancelUpload(w, r, rt.name, rt.arg) },
		})
	case routeReferrers:
		s.methods(w, r, map[string]http.HandlerFunc{"GET": func(w http.ResponseWriter, r *http.Request) { s.handleReferrers(w, r, rt.name, rt.arg) }})
	}
	return user
}

// methods calls the handler for r.Method (GET also serves HEAD) or answers
// 405 with an Allow header.
func (s *Server) methods(w http.ResponseWriter, r *http.Request, hs map[string]http.HandlerFunc) {
	m := r.Method
	if m == http.MethodHead {
		m = http.MethodGet
	}
	if h, ok := hs[m]; ok {
		h(w, r)
		return
	}
	var allow []string
	for _, k := range []string{"GET", "PUT", "POST", "PATCH", "DELETE"} {
		if _, ok := hs[k]; ok {
			allow = append(allow, k)
			if k == "GET" {
				allow = append(allow, "HEAD")
			}
		}
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	s.writeErr(w, r, oci.NewError(oci.CodeUnsupported, r.Method+" is not supported here"))
}

func (s *Server) challenge(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="airlock", charset="UTF-8"`)
	s.writeErr(w, r, oci.NewError(oci.CodeUnauthorized, msg))
}

func (s *Server) handleBase(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.writeErr(w, r, oci.NewError(oci.CodeUnsupported, ""))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write([]byte("{}"))
	}
}

// cacheForever marks content-addressed responses as immutable.
func cacheForever(h http.Header) { h.Set("Cache-Control", "max-age=31536000, immutable") }

var zeroTime time.Time
