//go:build e2e

// Package e2e tests the built airlock binary against real peers: Debian's
// skopeo and docker-registry, and go-containerregistry as a Go OCI client.
//
// Everything is behind the e2e build tag: `go test -tags e2e ./test/e2e/...`
// (run by `make e2e` and `make test`). The suite builds bin/airlock once per
// run into a temporary directory (or uses $AIRLOCK_BIN), starts every server
// on 127.0.0.1 with a port picked at run time and a temporary storage
// directory, and stops each by the PID it started (SIGTERM, then SIGKILL).
// No test touches a non-loopback address or real DNS.
//
// E2E_TARGET=docker-registry runs the registry-agnostic tests (skopeo round
// trip, bad input) against Debian's docker-registry instead of airlock, to
// check the harness itself and to compare behaviours.
//
// E2E_STORAGE=azblob or E2E_STORAGE=s3 puts the content of every airlock
// the harness starts (startAirlock, startCacheAirlock) in a fresh container
// on an Azurite, or a fresh bucket on a versitygw, that the test starts on
// loopback (internal/testkit/azuritetest, versitygwtest); storage checks then
// list and hash the objects instead of walking a directory. The TestObjStore*
// tests run only then; `make e2e-objstore` runs them and the cache tests on
// both backends. Tests that need a storage directory skip, saying why.
//
// Concurrency: tests run one after another (no t.Parallel); each owns the
// servers it starts, and t.Cleanup stops them.
package e2e
