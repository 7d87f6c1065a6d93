package oci

import "testing"

func TestParseImageRef(t *testing.T) {
	dg := "sha256:" + "ab" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
	tests := []struct {
		in              string
		host, repo, ref string
		wantErr         bool
	}{
		{in: "mcr.microsoft.com/oss/kubernetes/pause:3.6", host: "mcr.microsoft.com", repo: "oss/kubernetes/pause", ref: "3.6"},
		{in: "ubuntu", host: "docker.io", repo: "library/ubuntu", ref: "latest"},
		{in: "index.docker.io/ubuntu:22.04", host: "index.docker.io", repo: "library/ubuntu", ref: "22.04"},
		{in: "localhost:5000/a/b@" + dg, host: "localhost:5000", repo: "a/b", ref: dg},
		{in: "r.example/a:1@" + dg, host: "r.example", repo: "a", ref: dg},
		{in: "R.example/a:1", wantErr: true},
		{in: "r.example:99999/a", wantErr: true},
		{in: "r.example/a:", wantErr: true},
		{in: "r.example/a@sha256:xyz", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseImageRef(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseImageRef(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && (got.Host != tt.host || got.Repo != tt.repo || got.Ref.String() != tt.ref) {
			t.Errorf("ParseImageRef(%q) = %s %s %s, want %s %s %s", tt.in, got.Host, got.Repo, got.Ref, tt.host, tt.repo, tt.ref)
		}
	}
}
