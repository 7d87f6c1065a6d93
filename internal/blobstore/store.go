package blobstore

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

// DefaultUploadTTL is how long an upload may sit idle before PurgeUploads
// removes it when Options.UploadTTL is zero.
const DefaultUploadTTL = 24 * time.Hour

// Options configures a Store. The zero value is usable.
type Options struct {
	// UploadTTL: uploads with no write for this long are removed by
	// PurgeUploads. Zero or negative means DefaultUploadTTL (24h).
	UploadTTL time.Duration
	// Logger receives warnings and GC/purge summaries; nil discards.
	Logger *slog.Logger
	// Now is the clock (tests); nil means time.Now. Every time the store
	// records (blob and link mtimes, upload activity) comes from it.
	Now func() time.Time
}

// Top-level directories under the root.
const (
	dirBlobs   = "blobs"
	dirUploads = "uploads"
	dirTmp     = "tmp"
	dirRepos   = "repos"
)

// Reserved directory names inside a repository directory. A repository
// name component never starts with '_' (oci.ParseName), so none of these can
// collide with a nested repository.
const (
	dirManifests = "_manifests"
	dirRevisions = "revisions"
	dirTags      = "tags"
	dirLayers    = "_layers"
	dirReferrers = "_referrers"
)

// Log keys.
const (
	keyRepo   = "repo"
	keyDigest = "digest"
	keyUpload = "upload_id"
	keyPath   = "path"
	keyErr    = "err"
	keyCount  = "count"
	keyBytes  = "bytes"

	keyLinks      = "links"
	keyAttempts   = "attempts"
	keyUnparsable = "unparsable"
)

// repoLockStripes is the number of mutexes repositories hash onto.
const repoLockStripes = 64

// Store is the on-disk registry storage rooted at one directory. It is safe
// for concurrent use; see the package documentation for the contract.
type Store struct {
	root      string
	log       *slog.Logger
	now       func() time.Time
	uploadTTL time.Duration

	// refMu: operations that create or remove references (blob renames and
	// touches, links, manifests, tags) hold it shared for a few file
	// operations; GC holds it exclusively while it deletes.
	refMu sync.RWMutex
	// xref is the cross-process half of refMu (a flock on root/lock) and
	// holds the token other processes' reference-creating operations
	// rewrite.
	xref *refLock
	// gen counts reference-creating operations in this process; GC plans
	// without refMu and applies the plan only if neither gen nor the token
	// moved meanwhile.
	gen atomic.Uint64
	// gcRun serialises GC runs.
	gcRun sync.Mutex
	// repoMu keeps tag/revision/referrer updates of one repository in order.
	repoMu [repoLockStripes]sync.Mutex

	upMu    sync.Mutex
	uploads map[string]*Upload // live uploads, by id; guarded by upMu

	bufs sync.Pool // *[]byte copy buffers

	// drv is the byte-level storage under the store (driver.go); the
	// filesystem today. Blob stats and evictions go through it.
	drv Driver

	// tmp is this Store's own directory under root/tmp, locked by tmpLock
	// for as long as the Store is open (see tmp.go).
	tmp       string
	tmpLock   *os.File
	closeOnce sync.Once

	// testHookPlanned, when set (tests only), runs after an unlocked GC
	// plan, before GC takes refMu to apply it.
	testHookPlanned func(attempt int)
}

// copyBufSize is the buffer used to stream blobs to disk.
const copyBufSize = 256 << 10

// Open opens (creating if needed) the store at root, claims a temp
// directory of its own and removes what writers that are gone left in
// root/tmp. Temp files of other open Stores, in this or another process,
// are left alone. Close releases what Open claimed.
func Open(root string, opt Options) (*Store, error) {
	if root == "" {
		return nil, errors.New("open blob store: empty root path")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open blob store %s: %w", root, err)
	}
	s := &Store{
		root:      abs,
		log:       opt.Logger,
		now:       opt.Now,
		uploadTTL: opt.UploadTTL,
		uploads:   make(map[string]*Upload),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.uploadTTL <= 0 {
		s.uploadTTL = DefaultUploadTTL
	}
	s.bufs.New = func() any { b := make([]byte, copyBufSize); return &b }
	s.drv = &fsDriver{root: abs, tmp: s.tmpDir}

	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	for _, d := range []string{
		filepath.Join(dirBlobs, string(oci.SHA256)),
		filepath.Join(dirBlobs, string(oci.SHA512)),
		dirUploads, dirTmp, dirRepos,
	} {
		if err := mkdirAllDurable(filepath.Join(abs, d)); err != nil {
			return nil, fmt.Errorf("open blob store: create layout: %w", err)
		}
	}
	if s.xref, err = openRefLock(abs); err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	if err := s.claimTmp(); err != nil {
		s.xref.f.Close()
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	sc, err := s.cleanTmp()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open blob store: clean %s: %w", s.tmpRoot(), err)
	}
	if sc.removed > 0 {
		s.log.Info("removed leftovers of interrupted writes", keyPath, s.tmpRoot(), keyCount, sc.removed)
	}
	if sc.live > 0 {
		s.log.Info("other processes use this store; their temp files are left alone", keyPath, s.root, keyCount, sc.live)
	}
	return s, nil
}

// Root returns the absolute root directory.
func (s *Store) Root() string { return s.root }

func (s *Store) uploadsDir() string { return filepath.Join(s.root, dirUploads) }
func (s *Store) reposDir() string   { return filepath.Join(s.root, dirRepos) }

// blobPath is root/blobs/<alg>/<first two hex>/<hex>. d must be validated.
func (s *Store) blobPath(d oci.Digest) string {
	h := d.Hex()
	return filepath.Join(s.root, dirBlobs, string(d.Algorithm()), h[:2], h)
}

// repoDir is root/repos/<name>. name must be validated.
func (s *Store) repoDir(repo string) string {
	return filepath.Join(s.reposDir(), filepath.FromSlash(repo))
}

func (s *Store) linkPath(repo string, d oci.Digest) string {
	return filepath.Join(s.repoDir(repo), dirLayers, string(d.Algorithm()), d.Hex())
}

func (s *Store) revisionPath(repo string, d oci.Digest) string {
	return filepath.Join(s.repoDir(repo), dirManifests, dirRevisions, string(d.Algorithm()), d.Hex())
}

func (s *Store) tagsDir(repo string) string {
	return filepath.Join(s.repoDir(repo), dirManifests, dirTags)
}

func (s *Store) tagPath(repo, tag string) string { return filepath.Join(s.tagsDir(repo), tag) }

func (s *Store) referrersDir(repo string, subject oci.Digest) string {
	return filepath.Join(s.repoDir(repo), dirReferrers, string(subject.Algorithm()), subject.Hex())
}

func (s *Store) referrerPath(repo string, subject, d oci.Digest) string {
	return filepath.Join(s.referrersDir(repo, subject), string(d.Algorithm())+"-"+d.Hex()+".json")
}

// checkRepo validates a repository name and makes sure its directory lies
// strictly inside root/repos (defence in depth: the grammar already rules
// out "..", absolute paths, NUL and leading '_' or '.').
func (s *Store) checkRepo(repo string) error {
	if _, err := oci.ParseName(repo); err != nil {
		return err
	}
	rel, err := filepath.Rel(s.reposDir(), s.repoDir(repo))
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") || filepath.IsAbs(rel) {
		return fmt.Errorf("%w: %q leaves the repository tree", ErrNameInvalid, repo)
	}
	return nil
}

// checkDigest re-validates a digest: callers may have converted a string.
func checkDigest(d oci.Digest) (oci.Digest, error) {
	return oci.ParseDigest(string(d))
}

// checkTag validates a tag.
func checkTag(tag string) error {
	if !oci.ValidTag(tag) {
		if len(tag) > 64 {
			tag = tag[:64] + "…"
		}
		return fmt.Errorf("%w: tag %q must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", ErrReferenceInvalid, tag)
	}
	return nil
}

// lockRepo locks the stripe of repo and returns its unlock.
func (s *Store) lockRepo(repo string) func() {
	h := fnv.New32a()
	io.WriteString(h, repo)
	m := &s.repoMu[h.Sum32()%repoLockStripes]
	m.Lock()
	return m.Unlock
}

// touch sets a file's mtime (and atime) to the store clock.
func (s *Store) touch(path string) error {
	t := s.now()
	return os.Chtimes(path, t, t)
}

func (s *Store) getBuf() *[]byte  { return s.bufs.Get().(*[]byte) }
func (s *Store) putBuf(b *[]byte) { s.bufs.Put(b) }

// isNotExist reports a missing file, including a path whose parent is a
// file (ENOTDIR).
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir)
}
