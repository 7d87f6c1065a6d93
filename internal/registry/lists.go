package registry

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/airlockdev/airlock/internal/oci"
)

// maxPage caps n for tag and catalog listings.
const maxPage = 10000

// page applies the n and last parameters to a sorted list. It returns the
// page and whether more entries follow.
func page(all []string, q url.Values) ([]string, bool, *oci.Error) {
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(all, last)
		if i < len(all) && all[i] == last {
			i++
		}
		all = all[i:]
	}
	if v := q.Get("n"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, false, oci.NewError(oci.CodeUnsupported, "n must be a non-negative integer").WithStatus(http.StatusBadRequest)
		}
		if n > maxPage {
			n = maxPage
		}
		if len(all) > n {
			return all[:n], true, nil
		}
	}
	return all, false, nil
}

func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

func nextLink(path string, n int, last string) string {
	q := url.Values{"n": {strconv.Itoa(n)}, "last": {last}}
	return "<" + path + "?" + q.Encode() + `>; rel="next"`
}

func (s *Server) handleTags(w http.ResponseWriter, r *http.Request, repo string) {
	tags, err := s.store.Tags(r.Context(), repo)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	sort.Strings(tags)
	pg, more, oe := page(tags, r.URL.Query())
	if oe != nil {
		s.writeErr(w, r, oe)
		return
	}
	if more && len(pg) > 0 {
		w.Header().Set("Link", nextLink("/v2/"+repo+"/tags/list", len(pg), pg[len(pg)-1]))
	}
	if pg == nil {
		pg = []string{}
	}
	writeJSON(w, r, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{repo, pg})
}

func (s *Server) handleCatalog(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.writeErr(w, r, oci.NewError(oci.CodeUnsupported, ""))
		return
	}
	repos, err := s.store.Repositories(r.Context())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	sort.Strings(repos)
	pg, more, oe := page(repos, r.URL.Query())
	if oe != nil {
		s.writeErr(w, r, oe)
		return
	}
	if more && len(pg) > 0 {
		w.Header().Set("Link", nextLink("/v2/_catalog", len(pg), pg[len(pg)-1]))
	}
	if pg == nil {
		pg = []string{}
	}
	writeJSON(w, r, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{pg})
}

// handleReferrers answers GET /v2/<name>/referrers/<digest>. It never
// answers 404 for an unknown subject: the list is simply empty.
func (s *Server) handleReferrers(w http.ResponseWriter, r *http.Request, repo, arg string) {
	d, oe := parseBlobDigest(arg)
	if oe != nil {
		s.writeErr(w, r, oe)
		return
	}
	refs, err := s.store.Referrers(r.Context(), repo, d)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if at := r.URL.Query().Get("artifactType"); at != "" {
		kept := refs[:0:0]
		for _, ref := range refs {
			if ref.ArtifactType == at {
				kept = append(kept, ref)
			}
		}
		refs = kept
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	if refs == nil {
		refs = []oci.Descriptor{}
	}
	writeJSON(w, r, oci.MediaTypeImageIndex, oci.Index{SchemaVersion: 2, MediaType: oci.MediaTypeImageIndex, Manifests: refs})
}
