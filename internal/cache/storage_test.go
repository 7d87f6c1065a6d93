package cache

import (
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/registry"
	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/storage/storagetest"
)

// Outside every rule's target the cache is the plain store: the whole
// contract holds.
func TestStoreConformanceOutsideRules(t *testing.T) {
	storagetest.Run(t, "library/app", func(t *testing.T) storage.Store {
		s, _ := newStore(t, newFake(), nil)
		return s
	})
}

// Inside a rule's target content comes from the upstream and writes are
// refused: the read side of the contract holds, and an upstream 404 is a
// NotFoundUpstreamError, not a local miss.
func TestStoreConformanceInsideRule(t *testing.T) {
	f := storagetest.NewFixture("aks/app", "cache")
	storagetest.RunReadOnly(t, f, func(t *testing.T) storage.Store {
		up := newFake()
		up.addBlob(f.Config)
		up.addBlob(f.Layer)
		up.addManifest(f.Tag, f.Manifest)
		bs, err := blobstore.Open(t.TempDir(), blobstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		cfg := &Config{CacheRules: []Rule{{Name: "mcr", SourceRepo: "mcr.microsoft.com/*", TargetRepo: "aks/*"}}}
		cfg.SetDefaults()
		cfg.UpstreamTimeout = 2 * time.Second
		s, err := New(cfg, Deps{Local: registry.NewLocalStore(bs), Blobs: bs, Upstream: up})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { waitFills(t, s) })
		return s
	})
}
