// Package internal_test checks the package layout of DESIGN §5: every
// package under internal/ has a rank, and a package may import only
// internal packages of a lower rank. Servers share a rank, so they never
// import each other; what one needs from another is an interface owned by
// the consumer and wired in cmd/airlock.
package internal_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/airlockdev/airlock/"

// rank of each package (path relative to the module root).
var rank = map[string]int{
	"internal/dnsname": -1, // the innermost leaf: oci builds registry host names on it

	"internal/oci":       0, // leaves
	"internal/sniff":     0,
	"internal/netclass":  0, // leaf: the one address classification (gateway dialer, DNS rebinding filter, upstream client)
	"internal/relay":     0, // leaf: the TCP relay engine (copy step, splice, idle-tunnel poller) under egress
	"internal/blobstore": 2, // storage on disk; reports internal/storage's errors and records
	"internal/policy":    2,
	"internal/upstream":  2,
	"internal/ociclient": 1,
	"internal/basicauth": 1, // HTTP Basic accounts (bcrypt) shared by registry.users and admin.users // the plain OCI pull client (manifests, blobs, digest checks) shared by warm and verify
	"internal/warm":      2, // the `airlock cache warm` client: pulls a list through airlock's own registry
	"internal/cluster":   2, // coordination between replicas through Redis: leases, singleton jobs, shared records, versions
	"internal/learn":     3, // `airlock policy learn`: decision records → a policy proposal (above policy, which it compiles; no server imports it)
	"internal/registry":  3, // servers
	"internal/cache":     3,
	"internal/egress":    3,
	"internal/dnsserver": 3,
	"internal/node":      3,
	"internal/verify":    3,
	"internal/admin":     3,
	"internal/config":    4,
	"cmd/airlock":        5,
	"scripts/mkimage":    5, // `make image`: builds and pushes the OCI image (imports no internal package)

	// the host firewall runner (nft, ip) shared by node and egress, and its test double (imported by tests only)
	"internal/hostfw":            1,
	"internal/hostfw/hostfwtest": 2,

	// the storage contract below registry and cache, and its conformance suite (imported by tests only)
	"internal/storage":             1,
	"internal/storage/storagetest": 2,
	// object storage under blobstore: the shared HTTP helpers, the two
	// drivers (wired in cmd/airlock) and the driver conformance check
	"internal/storage/objhttp":    2,
	"internal/storage/azblob":     3,
	"internal/storage/s3":         3,
	"internal/storage/drivertest": 2,

	// test kits under internal/testkit: only tests import them (the layout
	// test allows tests anything); ranked above cmd/airlock so that no
	// non-test package can import them
	"internal/testkit/netnstest":      6, // throwaway network namespaces, code run inside one, rig commands
	"internal/testkit/logcap":         6, // slog JSON records captured for assertions
	"internal/testkit/dnstest":        6, // miekg/dns servers for tests: any handler, or a zone map (Zone)
	"internal/testkit/porttest":       6, // free loopback ports
	"internal/testkit/proctest":       6, // daemons run in the foreground, stopped by their PID when the test ends
	"internal/testkit/containerdtest": 7, // (uses proctest) a private containerd (own root, state, socket; optionally in a netns) and ctr
	"internal/testkit/redistest":      7, // (uses porttest) a private redis-server on loopback
	"internal/testkit/ociupstream":    6, // fake OCI upstreams: blob GETs redirected to a fake metadata service
	"internal/testkit/azuritetest":    7, // (uses porttest) a real Azurite (Azure Blob Storage emulator) on loopback
	"internal/testkit/versitygwtest":  7, // (uses porttest) a real versitygw (S3 gateway) on loopback
	"internal/testkit/objstoretest":   8, // blob stores on Azurite and versitygw (uses the two above)
}

func TestImportDirection(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]bool{}
	err = walkImports(root, func(rel, dep string) {
		pkgs[rel] = true
		from, ok := rank[rel]
		if !ok {
			t.Errorf("package %s has no rank; add it to rank in internal/layout_test.go (DESIGN §5)", rel)
			return
		}
		if dep == "" {
			return
		}
		to, known := rank[dep]
		if !known {
			t.Errorf("%s imports %s, which has no rank", rel, dep)
			return
		}
		if to >= from {
			t.Errorf("%s (rank %d) imports %s (rank %d): imports must point to lower ranks (DESIGN §5)", rel, from, dep, to)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"cmd/airlock", "internal/oci", "internal/registry", "internal/blobstore", "internal/config"} {
		if !pkgs[must] {
			t.Errorf("package %s not found: the walk is not looking where it should", must)
		}
	}
}

// walkImports calls fn(pkg, "") for every non-test Go file's package
// under root (paths relative to root; bench, test and testdata trees
// left out: tests may use a sibling's real implementation) and fn(pkg,
// dep) for each of the module's packages the file imports.
func walkImports(root string, fn func(rel, dep string)) error {
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "bench", "test", "bin":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		rel = filepath.ToSlash(rel)
		if rel == "internal" {
			return nil // this test
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		fn(rel, "")
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if dep, ok := strings.CutPrefix(path, module); ok {
				fn(rel, dep)
			}
		}
		return nil
	})
}
