// Package cache is airlock's pull-through cache: a storage.Store that
// serves repositories under a cache rule's target from local storage and
// fetches what is missing from the rule's upstream, exactly once.
//
// Data flow for a blob miss: the first request starts a fill — one upstream
// GET streamed into a blobstore.Writer, which hashes each byte once as it
// writes it. Every request for that digest (the first included, and any
// that arrive while the fill runs, for any repository) reads the growing
// temp file through a fillReader. Unverified bytes go only into a response
// that carries the blob's last byte, because only such a response can be
// cut so that the client sees it is not whole: a reader streams bytes as
// they arrive only after StreamToEnd (the registry calls it for a whole
// body or a range reaching the end) or in WriteTo, and even then holds the
// last byte back until the digest has verified. Any other read (a range
// short of the end) waits for the verification; Verified lets the registry
// wait bounded by the request and answer a clean error instead. WriteTo
// hands each readable stretch to the writer as a bounded *os.File, so an
// HTTP/1 response on TCP sends it with sendfile instead of copying it
// through user space. The blob is committed (fsync + rename) after the
// verification. On a mismatch or an upstream failure every reader gets an
// error and a streaming response is aborted, so no client ever sees a
// complete, clean response of bad bytes, and nothing is cached. The fill
// runs detached from the requests: a client that disconnects does not stop
// it.
//
// Manifests: by digest they are immutable (fetched once, coalesced); by
// tag they are served locally for tagTTL, then revalidated with a HEAD
// (digest compare). When the upstream is unreachable, cached content is
// served (a stale tag logs a warning and counts in a metric) and a cold miss
// fails within upstreamTimeout with an UNAVAILABLE error that says so.
//
// Requests that match no rule go to the plain local store unchanged;
// writes into a rule's target namespace are refused.
//
// Concurrency: a Store is safe for concurrent use. fills and the tag
// freshness map are guarded by their own mutexes; manifest fetches are
// coalesced by a singleflight group per repository and reference.
package cache
