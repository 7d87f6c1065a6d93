package registry

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/storage/storagetest"
	"github.com/airlockdev/airlock/internal/testkit/objstoretest"
)

// LocalStore over a temp dir meets the storage contract.
func TestLocalStoreConformance(t *testing.T) {
	storagetest.Run(t, "library/app", func(t *testing.T) storage.Store {
		bs, err := blobstore.Open(t.TempDir(), blobstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return NewLocalStore(bs)
	})
}

// An upstream's "not found" reaches the client with the OCI code a local
// miss of the same kind has.
func TestNotFoundUpstreamCodes(t *testing.T) {
	s, err := New(&Config{}, Deps{Store: NewLocalStore(nil)})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/v2/aks/app/blobs/sha256:00", nil)
	for _, c := range []struct {
		err  error
		code oci.Code
	}{
		{storage.NotFoundUpstream(oci.CodeBlobUnknown, "sha256:00", "mcr.microsoft.com/app"), oci.CodeBlobUnknown},
		{fmt.Errorf("fill: %w", storage.NotFoundUpstream(oci.CodeManifestUnknown, "app:v1", "mcr.microsoft.com")), oci.CodeManifestUnknown},
		{fmt.Errorf("stat: %w", storage.ErrBlobUnknown), oci.CodeBlobUnknown},
	} {
		e := s.toOCI(r, c.err)
		if e.Code != c.code || e.HTTPStatus() != http.StatusNotFound {
			t.Errorf("toOCI(%v) = %s %d, want %s 404", c.err, e.Code, e.HTTPStatus(), c.code)
		}
	}
}

// LocalStore on object storage (Azurite, versitygw) meets the same
// contract.
func TestLocalStoreConformanceObjectStorage(t *testing.T) {
	for _, b := range objstoretest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			storagetest.Run(t, "library/app", func(t *testing.T) storage.Store {
				return NewLocalStore(objstoretest.Store(t, b.URL(t), blobstore.Options{}))
			})
		})
	}
}
