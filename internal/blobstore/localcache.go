package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/airlockdev/airlock/internal/oci"
)

// localCache keeps copies of hot blobs on this replica's disk when the
// store is on object storage, so a warm GET is served by sendfile from a
// local file and asks the storage nothing. Content-addressed blobs never
// change, so a copy is never stale; whether a repository may serve a blob
// is still decided by its link (BlobLinked), never by the copy. A blob
// enters the cache verified against its digest: after a cache fill
// (the fill's spool file), or fetched in the background after a read
// missed. The least recently used copies go when the cache outgrows max.
type localCache struct {
	dir     string
	max     int64
	maxBlob int64 // larger blobs are not cached (they would flush the rest)
	log     *slog.Logger

	mu      sync.Mutex
	size    int64
	entries map[oci.Digest]*cacheEntry

	fetches singleflight.Group
	wg      sync.WaitGroup
}

type cacheEntry struct {
	size int64
	used time.Time
}

// openLocalCache opens (creating) dir, drops temp files a crash left and
// takes in the copies already there.
func openLocalCache(dir string, max int64, log *slog.Logger) (*localCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &localCache{dir: dir, max: max, maxBlob: max / 4, log: log, entries: map[oci.Digest]*cacheEntry{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		d, ok := cacheFileDigest(e.Name())
		fi, ierr := e.Info()
		if !ok || ierr != nil || !fi.Mode().IsRegular() {
			os.RemoveAll(p) // a temp file of a fetch cut off, or a stranger
			continue
		}
		c.entries[d] = &cacheEntry{size: fi.Size(), used: fi.ModTime()}
		c.size += fi.Size()
	}
	c.evict()
	return c, nil
}

// cacheFileName is <alg>-<hex>; temp files start with '.'.
func cacheFileName(d oci.Digest) string { return string(d.Algorithm()) + "-" + d.Hex() }

func cacheFileDigest(name string) (oci.Digest, bool) {
	alg, hex, ok := strings.Cut(name, "-")
	if !ok {
		return "", false
	}
	d, err := oci.ParseDigest(alg + ":" + hex)
	return d, err == nil
}

// open returns the local copy of d, or nil.
func (c *localCache) open(d oci.Digest) *os.File {
	c.mu.Lock()
	e, ok := c.entries[d]
	if ok {
		e.used = time.Now()
	}
	c.mu.Unlock()
	if !ok {
		return nil
	}
	f, err := os.Open(filepath.Join(c.dir, cacheFileName(d)))
	if err != nil {
		c.remove(d)
		return nil
	}
	return f
}

// adopt takes a verified file of d (a fill's spool) into the cache by
// hard link or copy; the caller keeps its own file.
func (c *localCache) adopt(d oci.Digest, path string, size int64) {
	if size > c.maxBlob {
		return
	}
	c.mu.Lock()
	_, have := c.entries[d]
	c.mu.Unlock()
	if have {
		return
	}
	dst := filepath.Join(c.dir, cacheFileName(d))
	if err := os.Link(path, dst); err != nil && !errors.Is(err, fs.ErrExist) {
		return // another file system: the next read fetches it instead
	}
	c.add(d, size)
}

// fetch copies blob d from the storage into the cache in the background
// (once, however many ask), verifying it on the way.
func (c *localCache) fetch(d oci.Digest, size int64, open func() (io.ReadCloser, error)) {
	if size > c.maxBlob {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.fetches.Do(string(d), func() (any, error) {
			c.mu.Lock()
			_, have := c.entries[d]
			c.mu.Unlock()
			if have {
				return nil, nil
			}
			if err := c.download(d, open); err != nil {
				c.log.Warn("local blob cache: fetch failed; reads keep going to the storage", keyDigest, d, keyErr, err)
				return nil, err
			}
			c.add(d, size)
			return nil, nil
		})
	}()
}

func (c *localCache) download(d oci.Digest, open func() (io.ReadCloser, error)) error {
	r, err := open()
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.CreateTemp(c.dir, ".fetch-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	v := oci.NewVerifier(d)
	_, err = io.Copy(io.MultiWriter(f, v), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if !v.Verified() {
		return fmt.Errorf("%w: the storage returned other bytes", ErrDigestMismatch)
	}
	return os.Rename(f.Name(), filepath.Join(c.dir, cacheFileName(d)))
}

func (c *localCache) add(d oci.Digest, size int64) {
	c.mu.Lock()
	if _, ok := c.entries[d]; !ok {
		c.entries[d] = &cacheEntry{size: size, used: time.Now()}
		c.size += size
	}
	c.mu.Unlock()
	c.evict()
}

// remove drops the copy of d (the blob was deleted through this store).
func (c *localCache) remove(d oci.Digest) {
	c.mu.Lock()
	if e, ok := c.entries[d]; ok {
		delete(c.entries, d)
		c.size -= e.size
	}
	c.mu.Unlock()
	os.Remove(filepath.Join(c.dir, cacheFileName(d)))
}

// evict removes the least recently used copies until the cache fits.
// Readers holding a removed file keep reading it.
func (c *localCache) evict() {
	c.mu.Lock()
	if c.size <= c.max {
		c.mu.Unlock()
		return
	}
	type kv struct {
		d oci.Digest
		e *cacheEntry
	}
	all := make([]kv, 0, len(c.entries))
	for d, e := range c.entries {
		all = append(all, kv{d, e})
	}
	slices.SortFunc(all, func(a, b kv) int { return a.e.used.Compare(b.e.used) })
	var gone []oci.Digest
	for _, x := range all {
		if c.size <= c.max {
			break
		}
		delete(c.entries, x.d)
		c.size -= x.e.size
		gone = append(gone, x.d)
	}
	c.mu.Unlock()
	for _, d := range gone {
		os.Remove(filepath.Join(c.dir, cacheFileName(d)))
	}
}

// close waits for background fetches.
func (c *localCache) close(ctx context.Context) {
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
