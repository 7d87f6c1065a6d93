package registry

import (
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/oci"
)

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/a/b/manifests/x", "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/id", "/v2//manifests/", "/v2/a/referrers/sha256:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt := parseRoute(path)
		if rt.kind == routeUnknown {
			return
		}
		if strings.Contains(rt.arg, "/") {
			t.Fatalf("parseRoute(%q) = %+v: argument contains '/'", path, rt)
		}
		// Whatever the route, a name that passes validation is safe on disk.
		if _, err := oci.ParseName(rt.name); err == nil && (strings.Contains(rt.name, "..") || strings.HasPrefix(rt.name, "/")) {
			t.Fatalf("parseRoute(%q) gave name %q that passed validation", path, rt.name)
		}
	})
}

func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"0-9", "bytes=0-9", "bytes 5-9/10", "9-0", "-1-2", "a-b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		start, end, err := contentRange(v)
		if err == nil && (start < 0 || end < start) {
			t.Fatalf("contentRange(%q) = %d-%d, accepted an empty or negative range", v, start, end)
		}
	})
}
