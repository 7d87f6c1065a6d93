package oci

import (
	"fmt"
	"strings"
)

// ImageRef is an image reference as users and containerd write it, split
// into the registry host, the repository on it and the tag or digest
// (mcr.microsoft.com/oss/kubernetes/pause:3.6, ubuntu:22.04,
// host/repo@sha256:…).
type ImageRef struct {
	Host string // as written, or docker.io when the reference names none
	Repo string // Docker Hub's one-component names under library/
	Ref  Reference
}

// ParseImageRef splits an image reference. The first component is a
// registry host when it has a '.' or ':' or is localhost; otherwise the
// image is on docker.io. No tag or digest means "latest"; a tag next to a
// digest is ignored (the digest decides).
func ParseImageRef(s string) (ImageRef, error) {
	var out ImageRef
	rest := s
	if i := strings.IndexByte(rest, '/'); i > 0 && (strings.ContainsAny(rest[:i], ".:") || rest[:i] == "localhost") {
		out.Host, rest = rest[:i], rest[i+1:]
	} else {
		out.Host = DockerHubHost
	}
	ref := "latest"
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		rest, ref = rest[:i], rest[i+1:]
		if j := strings.LastIndexByte(rest, ':'); j >= 0 {
			rest = rest[:j]
		}
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		rest, ref = rest[:i], rest[i+1:]
	}
	out.Repo = NormalizeRepo(out.Host, rest)
	if _, err := ParseName(out.Repo); err != nil {
		return out, fmt.Errorf("%q: %w", s, err)
	}
	if !ValidReferenceHost(out.Host) {
		return out, fmt.Errorf("%q: %q is not a registry host", s, out.Host)
	}
	r, err := ParseReference(ref)
	if err != nil {
		return out, fmt.Errorf("%q: %w", s, err)
	}
	out.Ref = r
	return out, nil
}
