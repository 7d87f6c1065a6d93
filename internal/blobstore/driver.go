package blobstore

import (
	"context"
	"strings"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// Driver is the byte-level storage under a Store (internal/storage): the
// file system (fsDriver, Open) or object storage (OpenDriver with an
// azblob or s3 driver).
type Driver = storage.Driver

// ObjectInfo describes one object of a Driver.
type ObjectInfo = storage.ObjectInfo

// localWriter is an ObjectWriter whose bytes are in a local file while they
// are written (the file system's): a cache fill serves readers from that
// file instead of keeping a copy of its own.
type localWriter interface {
	storage.ObjectWriter
	LocalPath() string
}

// mover is a Driver that can give an object another name without copying
// its bytes (the file system renames). Move replaces dst atomically.
type mover interface {
	Move(ctx context.Context, src, dst string) error
}

// toucher is a Driver that can refresh an object's time without rewriting
// it (the file system's utimes). Object storage has no such call: there,
// blobs keep their creation time and links are rewritten.
type toucher interface {
	Touch(ctx context.Context, name string) error
}

// blobName is blob d's object name: blobs/<alg>/<2 hex>/<hex>.
func blobName(d oci.Digest) string {
	h := d.Hex()
	return strings.Join([]string{dirBlobs, string(d.Algorithm()), h[:2], h}, "/")
}
