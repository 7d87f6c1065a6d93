package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// Driver is the byte-level storage under a blob store: named objects and
// nothing else — no digests, no repositories. Names are slash-separated,
// clean and relative ("blobs/sha256/ab/…", "repos/library/app/_layers/…");
// a driver refuses any other name with an error. Three implementations:
// the file system (internal/blobstore), Azure Blob Storage
// (internal/storage/azblob) and S3 (internal/storage/s3); every one passes
// internal/storage/drivertest.
//
// Guarantees every Driver gives:
//   - An object is visible whole or not at all: Put, Create and
//     ObjectWriter.Commit replace atomically, and a reader never sees a
//     part.
//   - A missing object is an error wrapping fs.ErrNotExist; a Create of
//     a name that exists is an error wrapping fs.ErrExist.
//   - An object's ModTime is the time it was last written (by the
//     storage's clock).
//   - A Driver is safe for concurrent use; an ObjectWriter is used by one
//     goroutine.
//   - A driver fails fast when its storage is unreachable: an error naming
//     the storage within its request timeout, never a hang.
type Driver interface {
	// Stat describes the object; fs.ErrNotExist when there is none.
	Stat(ctx context.Context, name string) (ObjectInfo, error)
	// Open reads the object. size is its size when the caller knows it
	// (the driver then asks nothing before the first Read), or -1 (the
	// driver stats it first: fs.ErrNotExist when missing). The reader
	// fetches lazily from its current offset, so Seek costs nothing; the
	// filesystem's reader is an *os.File (sendfile). An object that
	// disappears before the first Read fails that Read with fs.ErrNotExist.
	Open(ctx context.Context, name string, size int64) (io.ReadSeekCloser, error)
	// Put replaces the object with data, durably and atomically.
	Put(ctx context.Context, name string, data []byte) error
	// Create writes the object only if no object of that name exists
	// (fs.ErrExist otherwise), durably and atomically.
	Create(ctx context.Context, name string, data []byte) error
	// List calls fn for every object whose name is under prefix (a
	// directory-like path without trailing slash; "" is everything), in
	// no particular order. A prefix with no objects lists nothing; an
	// error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Delete removes the object durably; fs.ErrNotExist when there is none.
	Delete(ctx context.Context, name string) error
	// NewWriter starts writing object name. Its bytes are visible under no
	// name until Commit, which the caller calls only after verifying them
	// (a digest); Abort, or a crash, leaves nothing visible. Concurrent
	// writers of one name are safe: each Commit replaces the object whole.
	NewWriter(ctx context.Context, name string) (ObjectWriter, error)
	// String names the storage for errors and logs ("file:///var/lib/airlock",
	// "azblob://airlock", "s3://bucket"), never with credentials.
	String() string
}

// CheckName enforces the Driver contract's rule for object names: clean,
// relative, slash-separated, not empty, no "." or ".." element, no leading
// or trailing slash. Every driver refuses other names with this error.
func CheckName(name string) error {
	if name == "" || path.Clean(name) != name || strings.HasPrefix(name, "/") ||
		name == "." || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("object name %q: want a clean relative path (no leading or trailing slash, no . or .. elements, no //)", name)
	}
	return nil
}

// ObjectWriter streams one new object.
type ObjectWriter interface {
	io.Writer
	// Commit makes the bytes written the object, replacing any, durably
	// and atomically. The writer is finished afterwards.
	Commit() error
	// Abort discards the bytes; a no-op after Commit or Abort.
	Abort()
}

// ObjectInfo describes one object.
type ObjectInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// ErrCommitRaced is a Commit that lost to a concurrent writer of the same
// name: the object is whole, but it holds the other writer's bytes. For
// content-addressed names those are the same bytes, so the caller may take
// it as success once Stat finds the object.
var ErrCommitRaced = errors.New("object committed concurrently by another writer")

// ErrStorageUnavailable marks a failure to reach the storage (connection
// refused, timeout, 5xx after retries). Drivers wrap it with the storage's
// name so the registry answers UNAVAILABLE naming the storage, and
// /readyz reports it.
var ErrStorageUnavailable = errors.New("storage unavailable")

// Pinger is implemented by drivers that can check their storage is
// reachable and usable (credentials valid, container or bucket present)
// with one cheap request; /readyz calls it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Getter is implemented by drivers that read a whole small object in one
// request (object storage: a GET without the stat Open(name, -1) needs).
// An object larger than limit is an error; a missing one fs.ErrNotExist.
type Getter interface {
	Get(ctx context.Context, name string, limit int64) ([]byte, error)
}

// ReadSmall reads a whole object of at most limit bytes: in one request
// when d is a Getter, else through Open.
func ReadSmall(ctx context.Context, d Driver, name string, limit int64) ([]byte, error) {
	if g, ok := d.(Getter); ok {
		return g.Get(ctx, name, limit)
	}
	r, err := d.Open(ctx, name, -1)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("object %s: larger than %d bytes", name, limit)
	}
	return b, nil
}

// Observer receives one record per request a driver sends to its storage:
// the operation ("GetBlob", "PutBlock", "UploadPart", …), the result
// ("ok", a status code such as "404", or "error"), the bytes sent and
// received, and the latency. It must be safe for concurrent use.
type Observer func(op, result string, sent, received int64, d time.Duration)

// Signer is implemented by drivers that can hand out a time-limited URL
// from which a client may read an object directly (registry.storage.redirect).
type Signer interface {
	SignedURL(ctx context.Context, name string, ttl time.Duration) (string, error)
}
