package registry

import "testing"

func TestParseRoute(t *testing.T) {
	tests := []struct {
		path string
		want route
	}{
		{"/v2/", route{kind: routeBase}},
		{"/v2/_catalog", route{kind: routeCatalog}},
		{"/v2/a/b/tags/list", route{kind: routeTags, name: "a/b"}},
		{"/v2/a/manifests/latest", route{kind: routeManifest, name: "a", arg: "latest"}},
		{"/v2/x/manifests/manifests/v1", route{kind: routeManifest, name: "x/manifests", arg: "v1"}},
		{"/v2/a/blobs/sha256:00", route{kind: routeBlob, name: "a", arg: "sha256:00"}},
		{"/v2/a/b/blobs/uploads/", route{kind: routeUploadStart, name: "a/b"}},
		{"/v2/a/blobs/uploads/abc", route{kind: routeUpload, name: "a", arg: "abc"}},
		{"/v2/a/referrers/sha256:00", route{kind: routeReferrers, name: "a", arg: "sha256:00"}},
		{"/v2/manifests/x", route{}},
		{"/v3/a/manifests/x", route{}},
		{"/v2/a/other/x", route{}},
	}
	for _, tt := range tests {
		if got := parseRoute(tt.path); got != tt.want {
			t.Errorf("parseRoute(%q) = %+v, want %+v", tt.path, got, tt.want)
		}
	}
}
