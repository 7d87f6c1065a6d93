//go:build tools

// Package conformance pins the OCI distribution-spec conformance suite as a
// tool dependency. It is a separate module so that the suite's dependencies
// (ginkgo, gomega, reggie, …) never enter airlock's own go.mod.
//
// scripts/conformance.sh builds the suite with
//
//	go test -c -o conformance.test github.com/opencontainers/distribution-spec/conformance
//
// from this directory and runs it against a target registry.
package conformance

import _ "github.com/opencontainers/distribution-spec/conformance"
