package oci

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// Docker Hub's names. Image references, cache rules, containerd's ?ns=
// and the upstream client's endpoint and credential keys all fold
// docker.io, index.docker.io and registry-1.docker.io into DockerHubHost;
// only the upstream client's dial target is DockerHubEndpoint.
const (
	// DockerHubHost is Docker Hub's canonical registry host.
	DockerHubHost = "docker.io"
	// DockerHubEndpoint is where Docker Hub's registry API is served.
	DockerHubEndpoint = "registry-1.docker.io"
)

// ParseRegistryHost validates a registry host[:port] and returns its
// canonical form (CanonicalRegistryHost). The host is a DNS host name
// (dnsname.ParseHost: letters, digits and '-', any case), an IPv4 address
// or a bracketed IPv6 address without a zone; the port, when present, is
// a decimal number from 1 to 65535 without a leading zero. This is the
// one definition of a registry host: image references, cache rules,
// registry.upstreams keys and upstream URLs all use it.
func ParseRegistryHost(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty registry host")
	}
	if len(s) > 261 {
		return "", fmt.Errorf("registry host %q is too long", s[:64]+"…")
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", fmt.Errorf("registry host %q: unterminated '['", s)
		}
		host, port = s[:end+1], s[end+1:]
		if port != "" && port[0] != ':' {
			return "", fmt.Errorf("registry host %q: want [ipv6]:port", s)
		}
		port = strings.TrimPrefix(port, ":")
		a, err := netip.ParseAddr(host[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("registry host %q: %q is not an IPv6 address without a zone", s, host)
		}
	} else {
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			host, port = s[:i], s[i+1:]
			if port == "" {
				return "", fmt.Errorf("registry host %q: empty port", s)
			}
		}
		if _, err := netip.ParseAddr(host); err != nil || strings.Contains(host, ":") {
			if _, err := dnsname.ParseHost(host); err != nil {
				return "", fmt.Errorf("registry host %q: %w", s, err)
			}
		}
	}
	if port != "" && !validPort(port) {
		return "", fmt.Errorf("registry host %q: port %q is not a number from 1 to 65535", s, port)
	}
	return CanonicalRegistryHost(s), nil
}

// ValidRegistryHost reports whether ParseRegistryHost accepts h.
func ValidRegistryHost(h string) bool {
	_, err := ParseRegistryHost(h)
	return err == nil
}

// ValidReferenceHost reports whether h is a registry host as an image
// reference or a cache rule's sourceRepo writes it: ValidRegistryHost,
// and in lower case (the names the cache keys content by).
func ValidReferenceHost(h string) bool {
	return ValidRegistryHost(h) && h == strings.ToLower(h)
}

// CanonicalRegistryHost lowercases h and folds Docker Hub's names into
// DockerHubHost. It does not validate h.
func CanonicalRegistryHost(h string) string {
	h = strings.ToLower(h)
	switch h {
	case DockerHubHost, "index.docker.io", DockerHubEndpoint:
		return DockerHubHost
	}
	return h
}

// RegistryEndpointHost is the host[:port] that serves h's registry API
// when no endpoint is configured: DockerHubEndpoint for Docker Hub's
// names, otherwise the canonical host itself.
func RegistryEndpointHost(h string) string {
	if h = CanonicalRegistryHost(h); h == DockerHubHost {
		return DockerHubEndpoint
	}
	return h
}

// NormalizeRepo applies Docker Hub's rule that a one-component name lives
// under library/ (alpine → library/alpine). Other hosts' names are
// returned unchanged, as is an empty name.
func NormalizeRepo(host, path string) string {
	if CanonicalRegistryHost(host) == DockerHubHost && path != "" && !strings.Contains(path, "/") {
		return "library/" + path
	}
	return path
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 || p[0] == '0' {
		return false
	}
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n <= 65535
}
