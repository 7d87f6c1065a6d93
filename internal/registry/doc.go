// Package registry serves the OCI Distribution Spec v1.1 HTTP API.
//
// It owns routing, authentication, request validation and the mapping of
// storage errors to OCI wire errors. It stores nothing itself: every
// operation goes through Store, the storage contract of internal/storage.
// LocalStore implements it over internal/blobstore; the pull-through cache
// implements the same interface (without importing this package) and is
// wired in by main.
//
// Data flow: request → authenticate (Basic, bcrypt, successful checks cached)
// → parse name and reference (oci grammar; a bad one is 400/404, never 500)
// → Store → response. Blob GETs hand the Store's *os.File to
// http.ServeContent, so plain-HTTP downloads use sendfile and Range works.
// Content still being verified (a cache fill, pendingContent) streams only
// into a response that holds the blob's last byte; a range short of the
// end waits for the verification (blobrange.go).
//
// Lifecycle: New does no I/O; Start loads the TLS key pair, binds
// registry.listen and returns once it is bound, serving (and purging idle
// uploads) in the background; Shutdown stops accepting and drains requests
// in flight until its context ends; Failed reports a serving error that
// came before Shutdown. Serve(ctx, ln) is the blocking form on a listener
// the caller opened.
//
// Concurrency: a Server is safe for concurrent use. Reload swaps the auth
// settings and TLS certificate atomically; requests in flight keep the
// settings they started with.
package registry
