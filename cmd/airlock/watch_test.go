package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatchFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "airlock.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("version: 1\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := watchFile(ctx, path, 5*time.Millisecond)
	expect := func(what string, want bool) {
		t.Helper()
		select {
		case <-ch:
			if !want {
				t.Errorf("%s: watchFile signalled, want no signal", what)
			}
		case <-time.After(200 * time.Millisecond):
			if want {
				t.Errorf("%s: no signal, want one", what)
			}
		}
	}
	write("version: 1\n") // same content, new mtime
	expect("rewrite with the same content", false)
	write("version: 1\nlog: { level: debug }\n")
	expect("content changed in place", true)
	tmp := filepath.Join(dir, "new.yaml")
	os.WriteFile(tmp, []byte("version: 1\nlog: { level: warn }\n"), 0o644)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	expect("renamed over", true)
	os.Remove(path)
	expect("deleted", false)
	cancel()
	for range ch { // closed once ctx ends
	}
}
