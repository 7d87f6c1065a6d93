// Package storage is the one storage contract of the registry: the Store
// interface the OCI HTTP API calls, with its own types (ManifestRecord,
// Upload) and sentinel errors. It sits below every implementation and every
// consumer: registry.LocalStore implements it over internal/blobstore, the
// pull-through cache (internal/cache) implements it over a local Store and
// an upstream, and internal/registry serves whatever Store main wires in.
// storagetest holds the conformance suite every implementation runs.
//
// Errors: implementations report the sentinels below (wrapped with %w and
// context), a *NotFoundUpstreamError when a pull-through store's upstream
// said the content does not exist, or an *oci.Error for anything a client
// must see as is (DENIED for a write into a read-only repository,
// UNAVAILABLE for an unreachable upstream). internal/registry maps them to
// OCI wire errors in one place; anything else is a 500 whose cause is
// logged only.
//
// Concurrency: every Store and Upload implementation is safe for concurrent
// use; this package holds no state.
package storage
