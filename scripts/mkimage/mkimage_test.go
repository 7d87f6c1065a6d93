package main

import (
	"archive/tar"
	"io"
	"testing"
	"time"
)

// TestLayerOfFixed: the same files give the same layer digest, every
// entry carries the epoch and fixed numeric owners, and only
// /home/nonroot belongs to the non-root user.
func TestLayerOfFixed(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	a, err := layerOf(baseFiles([]byte("CA")), epoch)
	if err != nil {
		t.Fatal(err)
	}
	b, err := layerOf(baseFiles([]byte("CA")), epoch)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("layerOf twice = %s, %s, want one digest", da, db)
	}
	c, _ := layerOf(baseFiles([]byte("CA2")), epoch)
	if dc, _ := c.Digest(); dc == da {
		t.Errorf("another CA bundle gave the same digest %s", dc)
	}
	rc, err := a.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(epoch) || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v uname %q gname %q, want %v and no names", h.Name, h.ModTime, h.Uname, h.Gname, epoch)
		}
		wantOwner := 0
		if h.Name == "home/nonroot/" {
			wantOwner = nonroot
		}
		if h.Uid != wantOwner || h.Gid != wantOwner {
			t.Errorf("%s: owner %d:%d, want %d:%d", h.Name, h.Uid, h.Gid, wantOwner, wantOwner)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"127.0.0.1:5000", true}, {"localhost:5000", true}, {"[::1]:5000", true}, {"localhost", true},
		{"10.0.0.1:5000", false}, {"registry.example:443", false}, {"ghcr.io", false},
	} {
		if got := isLoopback(tc.host); got != tc.want {
			t.Errorf("isLoopback(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"push"}} {
		code := run(t.Context(), args, io.Discard, io.Discard)
		if code == 0 {
			t.Errorf("run(%q) = 0, want non-zero", args)
		}
	}
}
