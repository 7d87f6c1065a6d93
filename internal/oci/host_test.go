package oci

import (
	"strings"
	"testing"
)

func TestParseRegistryHost(t *testing.T) {
	tests := map[string]bool{
		"mcr.microsoft.com": true, "localhost": true, "127.0.0.1:5000": true, "[::1]:443": true, "[fdaa::1]": true,
		"a-b.c": true, "MCR.microsoft.com": true, "localhost:5000": true, "r.example:65535": true,
		"": false, "a..b": false, "-a.b": false, "a.b:0": false, "a.b:65536": false, "a.b:": false, "a.b:05": false,
		"a/b": false, "a.b/": false, "user@a.b": false, "a.b?x": false, "[::1": false, "[1.2.3.4]": false,
		"[fe80::1%eth0]": false, "a b": false, "[::1]x": false, "a_b.example": false, "r.example.": false,
		"::1": false, "fd00::1:5000": false, "r.example:99999": false,
	}
	for in, want := range tests {
		if got := ValidRegistryHost(in); got != want {
			t.Errorf("ValidRegistryHost(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestDockerHubCanonical pins one canonical form of Docker Hub's host
// through every path that names it: references, cache rules and ?ns=
// (CanonicalRegistryHost), the upstream client's endpoint and credential
// keys (CanonicalRegistryHost) and its dial target (RegistryEndpointHost).
func TestDockerHubCanonical(t *testing.T) {
	for _, h := range []string{"docker.io", "index.docker.io", "registry-1.docker.io", "Docker.IO"} {
		if got := CanonicalRegistryHost(h); got != DockerHubHost {
			t.Errorf("CanonicalRegistryHost(%q) = %q, want %q", h, got, DockerHubHost)
		}
		if got, err := ParseRegistryHost(h); err != nil || got != DockerHubHost {
			t.Errorf("ParseRegistryHost(%q) = %q, %v, want %q", h, got, err, DockerHubHost)
		}
		if got := RegistryEndpointHost(h); got != DockerHubEndpoint {
			t.Errorf("RegistryEndpointHost(%q) = %q, want %q", h, got, DockerHubEndpoint)
		}
		if got := NormalizeRepo(h, "alpine"); got != "library/alpine" {
			t.Errorf("NormalizeRepo(%q, alpine) = %q, want library/alpine", h, got)
		}
	}
	ref, err := ParseImageRef("alpine")
	if err != nil || CanonicalRegistryHost(ref.Host) != DockerHubHost || ref.Repo != "library/alpine" {
		t.Errorf("ParseImageRef(alpine) = %+v, %v, want host %s, repo library/alpine", ref, err, DockerHubHost)
	}
	for _, tt := range []struct{ host, repo, endpoint, wantRepo string }{
		{"mcr.microsoft.com", "pause", "mcr.microsoft.com", "pause"},
		{"MCR.Microsoft.com", "oss/kubernetes/pause", "mcr.microsoft.com", "oss/kubernetes/pause"},
		{"127.0.0.1:5000", "x", "127.0.0.1:5000", "x"},
		{"docker.io", "bitnami/redis", DockerHubEndpoint, "bitnami/redis"},
	} {
		if got := RegistryEndpointHost(tt.host); got != tt.endpoint {
			t.Errorf("RegistryEndpointHost(%q) = %q, want %q", tt.host, got, tt.endpoint)
		}
		if got := NormalizeRepo(tt.host, tt.repo); got != tt.wantRepo {
			t.Errorf("NormalizeRepo(%q, %q) = %q, want %q", tt.host, tt.repo, got, tt.wantRepo)
		}
	}
}

// FuzzParseRegistryHost: the host comes from untrusted input (?ns=, image
// references, config). An accepted host never carries a path, query,
// userinfo or whitespace, and its canonical form is a fixed point.
func FuzzParseRegistryHost(f *testing.F) {
	for _, s := range []string{"docker.io", "Index.Docker.IO", "127.0.0.1:5000", "[::1]:443", "a_b.c", "r.example.", "a.b:05", "[fe80::1%eth0]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseRegistryHost(s)
		if err != nil {
			return
		}
		if strings.ContainsAny(h, "/?#@ \t\r\n%\\") {
			t.Fatalf("ParseRegistryHost(%q) = %q, accepted a URL delimiter", s, h)
		}
		if again, err := ParseRegistryHost(h); err != nil || again != h {
			t.Fatalf("ParseRegistryHost(%q) = %q, then %q, %v: canonical form is not a fixed point", s, h, again, err)
		}
	})
}
