//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/testkit/azuritetest"
	"github.com/airlockdev/airlock/internal/testkit/objstoretest"
	"github.com/airlockdev/airlock/internal/testkit/versitygwtest"
)

// E2E_STORAGE chooses where the registries the harness starts keep their
// content: "" (a storage directory, the default), "azblob" (a fresh
// container on an Azurite the test starts) or "s3" (a fresh bucket on a
// versitygw the test starts).
const (
	storageFile   = ""
	storageAzblob = "azblob"
	storageS3     = "s3"
)

// e2eStorage returns E2E_STORAGE.
func e2eStorage(t testing.TB) string {
	t.Helper()
	switch s := os.Getenv("E2E_STORAGE"); s {
	case storageFile, storageAzblob, storageS3:
		return s
	default:
		t.Fatalf("E2E_STORAGE=%q, want empty (a directory), azblob or s3", s)
		return ""
	}
}

// objBackend is one object storage server a test started.
type objBackend struct {
	name string
	// newURL returns the storage URL of a fresh container or bucket.
	newURL func(t testing.TB) string
	// env is what a child airlock needs to reach it.
	env []string
	// stop and restart stop and start the server (same port and data).
	stop, restart func()
	// gw is the gateway (s3 only), for its S3 client.
	gw *versitygwtest.Gateway
}

// backends holds the backend of each top-level test that asked for one.
var backends = struct {
	sync.Mutex
	m map[string]*objBackend
}{m: map[string]*objBackend{}}

// objectBackend returns the E2E_STORAGE backend of t's top-level test,
// starting it on first use (it stops when the test that started it ends),
// or nil when E2E_STORAGE is empty. The credentials are constants of the
// test servers; they are also set in this process's environment, where
// objstoretest.Driver finds them.
func objectBackend(t testing.TB) *objBackend {
	t.Helper()
	kind := e2eStorage(t)
	if kind == storageFile {
		return nil
	}
	key, _, _ := strings.Cut(t.Name(), "/")
	backends.Lock()
	b := backends.m[key]
	backends.Unlock()
	if b != nil {
		return b
	}
	switch kind {
	case storageAzblob:
		az := azuritetest.Start(t)
		b = &objBackend{
			name:   storageAzblob,
			newURL: func(t testing.TB) string { return az.NewContainer(t) },
			env: []string{"AZURE_STORAGE_ACCOUNT=" + azuritetest.Account, "AZURE_STORAGE_KEY=" + azuritetest.Key,
				"AZURE_STORAGE_CONNECTION_STRING="},
			stop: az.Stop, restart: az.Restart,
		}
	case storageS3:
		gw := versitygwtest.Start(t)
		b = &objBackend{
			name:   storageS3,
			newURL: func(t testing.TB) string { return gw.URL(gw.NewBucket(t)) },
			env:    gw.Env(),
			stop:   gw.Stop, restart: gw.Restart,
			gw: gw,
		}
	}
	for _, kv := range b.env {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	backends.Lock()
	backends.m[key] = b
	backends.Unlock()
	t.Cleanup(func() {
		backends.Lock()
		delete(backends.m, key)
		backends.Unlock()
	})
	return b
}

// needObjectStorage returns the E2E_STORAGE backend, or skips t when
// E2E_STORAGE is empty (`make e2e-objstore` runs these tests on both).
func needObjectStorage(t testing.TB) *objBackend {
	t.Helper()
	b := objectBackend(t)
	if b == nil {
		t.Skip("object storage only: run with E2E_STORAGE=azblob or E2E_STORAGE=s3 (make e2e-objstore)")
	}
	return b
}

// skipOnObjectStorage skips t when the registries keep their content on
// object storage.
func skipOnObjectStorage(t testing.TB, why string) {
	t.Helper()
	if s := e2eStorage(t); s != storageFile {
		t.Skipf("E2E_STORAGE=%s: %s", s, why)
	}
}

// useObjectStorage puts r's content on object storage when E2E_STORAGE
// asks for it (url, or a fresh container or bucket when url is empty),
// with a local scratch directory; a no-op otherwise.
func (r *registry) useObjectStorage(url string) {
	r.t.Helper()
	b := objectBackend(r.t)
	if url == "" && b == nil {
		return
	}
	if url == "" {
		url = b.newURL(r.t)
	}
	if b != nil {
		r.env = b.env
	}
	r.storageURL = url
	r.scratch = filepath.Join(r.dir, "scratch")
	if err := os.MkdirAll(r.scratch, 0o755); err != nil {
		r.t.Fatal(err)
	}
}

// storageYAML is the registry.storage line of r's airlock config.
func (r *registry) storageYAML() string {
	if r.storageURL == "" {
		return fmt.Sprintf("  storage: { path: %q }\n", r.storage)
	}
	return fmt.Sprintf("  storage: { url: %q, scratch: %q, redirect: %t }\n", r.storageURL, r.scratch, r.redirect)
}

// driver opens r's object storage from the test (nil observer).
func (r *registry) driver(t testing.TB) storage.Driver {
	t.Helper()
	if r.drv == nil {
		r.drv = objstoretest.Driver(t, r.storageURL, nil)
	}
	return r.drv
}

// storedBlobs returns every blob r's storage holds under a digest name,
// each checked to hash to it (see storedBlobs; on object storage: every
// object under blobs/, read back through the driver).
func (r *registry) storedBlobs(t testing.TB) map[string]string {
	t.Helper()
	if r.storageURL == "" {
		return storedBlobs(t, r.storage)
	}
	return objectBlobs(t, r.driver(t))
}

// objectBlobs lists blobs/ of drv and hashes every object against its
// name (blobs/<alg>/<2 hex>/<hex>), reporting an error for each that does
// not match or is named otherwise.
func objectBlobs(t testing.TB, drv storage.Driver) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var objs []storage.ObjectInfo
	if err := drv.List(ctx, "blobs", func(o storage.ObjectInfo) error {
		objs = append(objs, o)
		return nil
	}); err != nil {
		t.Fatalf("list blobs/ of %s: %v", drv, err)
	}
	found := map[string]string{}
	for _, o := range objs {
		parts := strings.Split(o.Name, "/")
		if len(parts) != 4 || digestAlgo(parts[3]) != parts[1] || parts[2] != parts[3][:2] {
			t.Errorf("object %s of %s under blobs/ is not named blobs/<alg>/<2 hex>/<hex>", o.Name, drv)
			continue
		}
		want := parts[1] + ":" + parts[3]
		got, err := objectDigest(ctx, drv, o, parts[1])
		if err != nil {
			t.Fatalf("read %s of %s: %v", o.Name, drv, err)
		}
		if got != want {
			t.Errorf("stored blob %s of %s holds content %s: partial or corrupt blob visible", o.Name, drv, got)
		}
		found[want] = o.Name
	}
	return found
}

func objectDigest(ctx context.Context, drv storage.Driver, o storage.ObjectInfo, algo string) (string, error) {
	rc, err := drv.Open(ctx, o.Name, o.Size)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	var h hash.Hash = sha256.New()
	if algo == "sha512" {
		h = sha512.New()
	}
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s:%x", algo, h.Sum(nil)), nil
}

// objectNames lists the names of the objects under prefix of r's storage.
func (r *registry) objectNames(t testing.TB, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var names []string
	if err := r.driver(t).List(ctx, prefix, func(o storage.ObjectInfo) error {
		names = append(names, o.Name)
		return nil
	}); err != nil {
		t.Fatalf("list %s/ of %s: %v", prefix, r.storageURL, err)
	}
	return names
}

// eventuallyStored waits up to 10s for blob d to appear in r's storage.
func (r *registry) eventuallyStored(t testing.TB, d string) bool {
	t.Helper()
	if r.storageURL == "" {
		return eventuallyStored(t, r.storage, d)
	}
	for i := 0; i < 100; i++ {
		if r.hasBlob(t, d) {
			_, ok := r.storedBlobs(t)[d]
			return ok
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// hasBlob reports whether r's storage holds an object or file named by d
// (without reading it).
func (r *registry) hasBlob(t testing.TB, d string) bool {
	t.Helper()
	alg, hex, _ := strings.Cut(d, ":")
	name := "blobs/" + alg + "/" + hex[:2] + "/" + hex
	if r.storageURL == "" {
		_, err := os.Stat(filepath.Join(r.storage, filepath.FromSlash(name)))
		return err == nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := r.driver(t).Stat(ctx, name)
	return err == nil
}

// tmpFiles lists airlock's temp files, by path relative to their
// directory: the storage directory's tmp, or on object storage the local
// scratch directory (cache fills in progress).
func (r *registry) tmpFiles(t testing.TB) map[string]int64 {
	t.Helper()
	if r.storageURL == "" {
		return storageTmpFiles(t, r.storage)
	}
	out := map[string]int64{}
	err := filepath.WalkDir(r.scratch, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				rel, _ := filepath.Rel(r.scratch, path)
				out[rel] = info.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runGC runs `airlock registry gc --delete --grace 0s` on r's config and
// storage, with r's environment, and returns its output.
func (r *registry) runGC(t testing.TB) string {
	t.Helper()
	cmd := exec.Command(needAirlock(t), "registry", "gc", "--delete", "--grace", "0s", "--config", r.configPath)
	cmd.Env = append(os.Environ(), r.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("airlock registry gc --delete --grace 0s: %v\n%s", err, out)
	}
	return string(out)
}
