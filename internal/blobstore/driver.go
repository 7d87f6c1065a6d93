package blobstore

import (
	"io"
	"time"
)

// Driver is the byte-level storage under a Store: named objects and
// nothing else — no digests, no repositories, no locking. Names are
// slash-separated paths relative to the store's root ("blobs/sha256/ab/…",
// "repos/library/app/_layers/…"), always local (no "..", no leading "/").
// The filesystem implements it today (fsDriver); object storage implements
// it next, and runs the same driver tests.
//
// Guarantees every Driver gives: an object is visible whole or not at all
// (Put and ObjectWriter.Commit replace atomically); a missing object is an
// error wrapping fs.ErrNotExist; a Driver is safe for concurrent use.
type Driver interface {
	// Stat describes the object; fs.ErrNotExist when there is none.
	Stat(name string) (ObjectInfo, error)
	// Get opens the whole object. The filesystem's reader is an *os.File,
	// so an HTTP response can use sendfile.
	Get(name string) (io.ReadSeekCloser, ObjectInfo, error)
	// GetRange reads length bytes from offset (length < 0: to the end);
	// fewer when the object ends first.
	GetRange(name string, offset, length int64) (io.ReadCloser, error)
	// Put replaces the object with data, durably and atomically.
	Put(name string, data []byte) error
	// List calls fn for every object whose name is under prefix (a
	// directory-like path; "" is everything), in no particular order. A
	// prefix with no objects lists nothing; an error from fn stops it.
	List(prefix string, fn func(ObjectInfo) error) error
	// Delete removes the object durably; fs.ErrNotExist when there is none.
	Delete(name string) error
	// NewWriter starts an object whose bytes are invisible under any name
	// until Commit: the caller verifies them (a digest) first.
	NewWriter() (ObjectWriter, error)
}

// ObjectWriter streams one new object. It is used by one goroutine.
type ObjectWriter interface {
	io.Writer
	// Commit makes the bytes written the object name, replacing any
	// (durably, atomically). The writer is finished afterwards.
	Commit(name string) error
	// Abort discards the bytes; a no-op after Commit or Abort.
	Abort()
}

// ObjectInfo describes one object.
type ObjectInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
}
