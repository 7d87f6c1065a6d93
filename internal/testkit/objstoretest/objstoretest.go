// Package objstoretest gives tests blob stores on real object storage: a
// fresh container on Azurite and a fresh bucket on versitygw, both started
// by the test on loopback. Only tests import it.
package objstoretest

import (
	"context"
	"net/url"
	"testing"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/storage/azblob"
	"github.com/airlockdev/airlock/internal/storage/s3"
	"github.com/airlockdev/airlock/internal/testkit/azuritetest"
	"github.com/airlockdev/airlock/internal/testkit/versitygwtest"
)

// Backend is one object storage server.
type Backend struct {
	Name string // "azblob" or "s3"
	// URL returns a registry.storage.url of a container or bucket no other
	// caller gets (created on first use).
	URL func(t testing.TB) string
	// Env is what a child airlock process needs to reach it (credentials).
	Env []string
	// Stop and Restart stop and start the server (same port and data).
	Stop, Restart func()
}

// Backends starts Azurite and versitygw for t (each skips, or fails under
// AIRLOCK_REQUIRE_TOOLS=1, when not installed) and sets their credentials
// in t's environment.
func Backends(t *testing.T) []Backend {
	t.Helper()
	az := azuritetest.Start(t)
	azuritetest.SetEnv(t)
	gw := versitygwtest.Start(t)
	gw.SetEnv(t)
	return []Backend{
		{
			Name: "azblob",
			URL:  func(t testing.TB) string { return az.NewContainer(t) },
			Env: []string{"AZURE_STORAGE_ACCOUNT=" + azuritetest.Account, "AZURE_STORAGE_KEY=" + azuritetest.Key,
				"AZURE_STORAGE_CONNECTION_STRING="},
			Stop: az.Stop, Restart: az.Restart,
		},
		{
			Name: "s3",
			URL:  func(t testing.TB) string { return gw.URL(gw.NewBucket(t)) },
			Env:  gw.Env(),
			Stop: gw.Stop, Restart: gw.Restart,
		},
	}
}

// Driver opens the driver of a storage URL.
func Driver(t testing.TB, rawURL string, obs storage.Observer) storage.Driver {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var d storage.Driver
	switch u.Scheme {
	case "azblob":
		d, err = azblob.Open(ctx, u, azblob.Options{Observer: obs})
	case "s3":
		d, err = s3.Open(ctx, u, s3.Options{Observer: obs})
	default:
		t.Fatalf("objstoretest: no driver for %s", rawURL)
	}
	if err != nil {
		t.Fatalf("open %s: %v", rawURL, err)
	}
	return d
}

// Store opens a blob store on a storage URL, closed with t.
func Store(t testing.TB, rawURL string, opt blobstore.Options) *blobstore.Store {
	t.Helper()
	bs, err := blobstore.OpenDriver(Driver(t, rawURL, nil), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	return bs
}
