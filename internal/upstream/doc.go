// Package upstream is the client airlock's pull-through cache uses to fetch
// manifests, blobs and referrers from upstream registries
// (mcr.microsoft.com, registry-1.docker.io, a docker-registry in tests). It
// is a pure client: no cache logic, no disk.
//
// # What it owns
//
//   - The upstream part of the registry configuration, Config (inlined
//     in the registry section by cache.Config): Endpoint
//     (registry.upstreams: where a host is really fetched from, extra CA
//     roots), CredentialSet (registry.credentialSets: environment variables
//     holding credentials), registry.upstreamAllowedInternalRanges, and
//     their validation (Config.Validate, Endpoint.Validate,
//     CredentialSet.Validate).
//   - Nothing of host naming: what a registry host[:port] is, its
//     canonical form (Docker Hub's three names are docker.io, served by
//     registry-1.docker.io) and library/ for single-component names are
//     oci's (ParseRegistryHost, CanonicalRegistryHost,
//     RegistryEndpointHost, NormalizeRepo). Endpoints and credentials are
//     keyed by the canonical host.
//   - Authentication: the distribution token flow (on 401 with a Bearer
//     challenge, a token from the realm, anonymous or with Basic
//     credentials, cached per endpoint and scope until shortly before
//     expires_in, default 60s, and the request sent once more) and Basic.
//     ParseChallenges reads WWW-Authenticate. Only the endpoint's own 401
//     is answered (never one from a redirect target); an https endpoint's
//     realm must be https; credentials go to a realm only when the
//     endpoint is https, or, for a plain-http endpoint, when the realm is
//     on the endpoint's own host. A token response's token is its exact
//     "token" or "access_token" member (parseTokenResponse).
//   - Address checks (dial.go): every connection — endpoint, redirect,
//     token realm — resolves its host, checks each address with netclass
//     (the classification the gateway's dialer and the DNS rebinding
//     filter use) and dials the checked IP literal, so the address checked
//     is the address dialled. The host:port of a configured endpoint
//     (Options.Endpoints) may be any address; every other connection must
//     be public or inside Options.AllowedInternal. A refusal is an
//     *AddrError and ErrBadResponse, before any byte is exchanged.
//   - Transport: system roots plus the endpoint's caFile, HTTP/2, connect
//     and idle timeouts, keep-alives, no transparent decompression (bytes
//     must hash to their digest), no proxy from the environment, redirects
//     followed without Authorization to another host[:port] and never from
//     https to http.
//   - Retries: connection errors, 5xx and 429 are retried with exponential
//     backoff and jitter; 429's Retry-After (seconds or HTTP date) is
//     honoured; nothing waits past Options.Timeout, which bounds an
//     operation up to its response headers — slot wait, every attempt,
//     token fetches and backoff included — so a cold request to an
//     unreachable upstream fails within it with ErrUnavailable.
//   - A per-endpoint limit on concurrent requests (a semaphore; a blob
//     holds its slot until its body is closed).
//   - Typed errors (*Error with Kind ErrNotFound, ErrUnauthorized,
//     ErrUnavailable, ErrRateLimited, ErrBadResponse, ErrInvalidRequest)
//     and ClientMessage, the only text about a failure fit for a registry
//     client: it never carries an address or a credential.
//   - Metrics airlock_upstream_* (metrics.go) on an injected registerer.
//
// # Data flow
//
// Each method resolves (host, repository) to an endpoint and credentials,
// then runs an exchange: take a slot, send (with a cached token or Basic
// when known), answer a 401 challenge once, classify the status, and
// retry what is worth retrying while Timeout allows. GetManifest and
// Referrers read their body inside the exchange (at most
// oci.MaxManifestSize; a broken body is retried), then verify: a manifest
// must hash to the requested digest and to Docker-Content-Digest when
// sent, and must parse (oci.ParseManifest). HeadManifest reads the
// headers, falling back to GetManifest when they are incomplete. GetBlob
// returns the open body: from then on it is not retried; a read that fails
// or stalls for StallTimeout returns ErrUnavailable and the caller may
// resume with an offset (Range). Verifying a blob's digest is the
// caller's job, since it streams bytes onwards meanwhile. Referrers falls
// back to the referrers tag schema (<alg>-<hex>) when the API answers 404.
//
// # Concurrency
//
// A Client is safe for concurrent use. Its mutable state — the token cache,
// the per-endpoint semaphores, the set of endpoints that asked for Basic,
// and the in-flight token fetches (one fetch per endpoint and scope however
// many requests need it) — lives in the Client, behind a mutex. New does
// no network I/O; it reads the system root pool and the caFile PEM files.
// A blob body must be closed by its reader.
package upstream
