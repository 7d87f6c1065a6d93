package blobstore

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/storage/drivertest"
)

func TestFSDriver(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) storage.Driver {
		root, tmp := t.TempDir(), t.TempDir()
		return &fsDriver{root: root, tmp: func() string { return tmp }, now: time.Now}
	})
}

// The store's blobs are the driver's objects under blobName.
func TestStoreBlobsThroughDriver(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := []byte("through the driver")
	d := oci.SHA256.FromBytes(b)
	if _, err := s.Put(d, bytes.NewReader(b), -1); err != nil {
		t.Fatal(err)
	}
	if info, err := s.drv.Stat(context.Background(), blobName(d)); err != nil || info.Size != int64(len(b)) {
		t.Errorf("drv.Stat(blobName) = %+v, %v, want %d bytes", info, err, len(b))
	}
}
