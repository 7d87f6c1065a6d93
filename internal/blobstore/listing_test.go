package blobstore

import (
	"slices"
	"testing"
)

// The kept repository list follows changes made by another Store on the
// same root (another process: the token in root/lock), additions and
// removals alike, and tags and emptied repositories likewise.
func TestRepositoriesKeptListFollowsOtherStores(t *testing.T) {
	a := newStore(t)
	b := openStore(t, a.Root(), Options{})
	pushImage(t, a, "lib/app", "v1", []byte("{}"), []byte("1"))
	if got, err := b.Repositories(); err != nil || !slices.Equal(got, []string{"lib/app"}) {
		t.Fatalf("b.Repositories = %v, %v; want [lib/app]", got, err)
	}
	got, _ := b.Repositories() // from the kept list
	got[0] = "changed"         // the caller's copy
	d := putBlob(t, a, "lib/app/sub", "sha256", []byte("2"))
	if got, err := b.Repositories(); err != nil || !slices.Equal(got, []string{"lib/app", "lib/app/sub"}) {
		t.Fatalf("b.Repositories after a's push = %v, %v; want [lib/app lib/app/sub]", got, err)
	}
	if err := a.UnlinkBlob("lib/app/sub", d); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Repositories(); err != nil || !slices.Equal(got, []string{"lib/app"}) {
		t.Fatalf("b.Repositories after a's unlink = %v, %v; want [lib/app]", got, err)
	}
	if err := a.DeleteTag("lib/app", "v1"); err != nil {
		t.Fatal(err)
	}
	if tags, err := b.Tags("lib/app"); err != nil || len(tags) != 0 {
		t.Fatalf("b.Tags after a's DeleteTag = %v, %v; want []", tags, err)
	}
	// A directory with only empty _layers and _manifests is no repository;
	// one with a file deep under _manifests/revisions is.
	for _, p := range []string{"empty/_layers/sha256", "empty/_manifests/tags", "x/_manifests/revisions/sha256"} {
		if err := mkdirAllDurable(a.reposDir() + "/" + p); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := a.fsRepositories(); err != nil || !slices.Equal(got, []string{"lib/app"}) {
		t.Fatalf("fsRepositories = %v, %v; want [lib/app]", got, err)
	}
}

// A kept tag list follows another Store's tag pushes and deletes.
func TestTagsKeptListFollowsOtherStores(t *testing.T) {
	a := newStore(t)
	b := openStore(t, a.Root(), Options{})
	img := pushImage(t, a, "lib/app", "v1", []byte("{}"), []byte("1"))
	if tags, err := b.Tags("lib/app"); err != nil || !slices.Equal(tags, []string{"v1"}) {
		t.Fatalf("b.Tags = %v, %v; want [v1]", tags, err)
	}
	tags, _ := b.Tags("lib/app")
	tags[0] = "changed" // the caller's copy
	m, err := a.GetManifest("lib/app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PutManifest("lib/app", m, "v0"); err != nil {
		t.Fatal(err)
	}
	if tags, err := b.Tags("lib/app"); err != nil || !slices.Equal(tags, []string{"v0", "v1"}) {
		t.Fatalf("b.Tags after a's tag = %v, %v; want [v0 v1]", tags, err)
	}
	if err := a.DeleteManifest("lib/app", img.manifest); err != nil {
		t.Fatal(err)
	}
	if tags, err := b.Tags("lib/app"); err == nil && len(tags) != 0 {
		t.Fatalf("b.Tags after a's DeleteManifest = %v; want none", tags)
	}
}
