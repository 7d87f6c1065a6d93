package oci

import "strings"

// Manifest media types airlock stores and serves.
const (
	MediaTypeImageManifest  = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeImageIndex     = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeEmptyJSON      = "application/vnd.oci.empty.v1+json"
)

// ManifestAccept is the Accept header of a manifest request: every
// manifest media type airlock handles, indexes first.
const ManifestAccept = MediaTypeImageIndex + ", " + MediaTypeImageManifest + ", " + MediaTypeDockerList + ", " + MediaTypeDockerManifest

// Schema-1 media types are recognised only to reject them with a clear message.
const (
	mediaTypeDockerV1       = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerV1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// IsIndex reports whether mt is a manifest list / image index type.
func IsIndex(mt string) bool { return mt == MediaTypeImageIndex || mt == MediaTypeDockerList }

// IsManifestMediaType reports whether mt is one of the manifest types airlock accepts.
func IsManifestMediaType(mt string) bool {
	switch mt {
	case MediaTypeImageManifest, MediaTypeImageIndex, MediaTypeDockerManifest, MediaTypeDockerList:
		return true
	}
	return false
}

// BaseMediaType strips parameters ("; charset=…") and surrounding space.
func BaseMediaType(mt string) string {
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	return strings.TrimSpace(mt)
}

// ValidMediaType checks the RFC 6838 shape type "/" subtype with restricted
// name characters, which is what the image spec requires of mediaType and
// artifactType fields.
func ValidMediaType(mt string) bool {
	typ, sub, ok := strings.Cut(mt, "/")
	return ok && validRestrictedName(typ) && validRestrictedName(sub)
}

func validRestrictedName(s string) bool {
	if len(s) == 0 || len(s) > 127 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return false
		}
		if !alnum && !strings.ContainsRune("!#$&-^_.+", rune(c)) {
			return false
		}
	}
	return true
}
