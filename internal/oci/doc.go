// Package oci holds the OCI image and distribution vocabulary that the
// registry, the cache and the upstream client share: digests, repository
// names and references, registry host names (host.go: the one definition
// of a registry host[:port] and its canonical form, Docker Hub folded into
// docker.io), media types, manifest parsing and validation, and the table
// of wire errors.
//
// It is a leaf: it imports only the standard library and dnsname (host
// names), and does no I/O. Every
// function is safe for concurrent use. Everything here parses untrusted bytes
// (request paths, manifest bodies from clients and upstreams), so every parser
// bounds its input and returns an error rather than panicking; fuzz targets
// cover ParseManifest, ParseName, ParseReference and ParseRegistryHost.
package oci
