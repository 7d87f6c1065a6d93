// Package ociclient is the plain OCI pull client: it GETs manifests and
// GETs or HEADs blobs from one registry's /v2 API, sending oci's Accept
// list, parsing manifests with oci.ParseManifest and checking a
// manifest's bytes against the digest it was asked for and against
// Docker-Content-Digest.
//
// It owns no credentials store, token exchange, retries or address guard
// (that is internal/upstream, the cache's client for upstream registries).
// Its users are the warm client (internal/warm, pulling through airlock's
// own registry) and verify's registry-image check (pulling through the
// mirror a node's hosts.toml names).
//
// Data flow: caller → Client.Manifest / Blob / HeadBlob → the caller's
// *http.Client → the registry. Blob bodies are returned unread; the
// caller streams and verifies them (oci.NewVerifier).
//
// Concurrency: a Client holds no mutable state; its methods are safe
// from several goroutines when its *http.Client is.
package ociclient
