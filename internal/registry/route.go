package registry

import (
	"strings"
)

// routeKind identifies an endpoint of the distribution API.
type routeKind int

const (
	routeUnknown     routeKind = iota
	routeBase                  // /v2/
	routeCatalog               // /v2/_catalog
	routeTags                  // /v2/<name>/tags/list
	routeManifest              // /v2/<name>/manifests/<reference>
	routeBlob                  // /v2/<name>/blobs/<digest>
	routeUploadStart           // /v2/<name>/blobs/uploads/
	routeUpload                // /v2/<name>/blobs/uploads/<id>
	routeReferrers             // /v2/<name>/referrers/<digest>
)

var routeNames = [...]string{"unknown", "base", "catalog", "tags", "manifest", "blob", "upload_start", "upload", "referrers"}

func (k routeKind) String() string { return routeNames[k] }

// route is a parsed request path. name and arg are unvalidated.
type route struct {
	kind routeKind
	name string // repository
	arg  string // reference, digest or upload id
}

// parseRoute splits a /v2/ path. Repository names contain slashes, so the
// endpoint is recognised from the end of the path; names, references and
// ids never contain '/', which makes the split unambiguous.
func parseRoute(path string) route {
	if path == "/v2/" || path == "/v2" {
		return route{kind: routeBase}
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{}
	}
	if rest == "_catalog" {
		return route{kind: routeCatalog}
	}
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		return route{kind: routeTags, name: name}
	}
	if name, ok := strings.CutSuffix(rest, "/blobs/uploads/"); ok {
		return route{kind: routeUploadStart, name: name}
	}
	if name, ok := strings.CutSuffix(rest, "/blobs/uploads"); ok {
		return route{kind: routeUploadStart, name: name}
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return route{}
	}
	head, last := rest[:i], rest[i+1:]
	j := strings.LastIndexByte(head, '/')
	if j <= 0 {
		return route{}
	}
	name, kw := head[:j], head[j+1:]
	switch kw {
	case "manifests":
		return route{kind: routeManifest, name: name, arg: last}
	case "blobs":
		return route{kind: routeBlob, name: name, arg: last}
	case "referrers":
		return route{kind: routeReferrers, name: name, arg: last}
	case "uploads":
		if n, ok := strings.CutSuffix(name, "/blobs"); ok && n != "" {
			return route{kind: routeUpload, name: n, arg: last}
		}
	}
	return route{}
}
