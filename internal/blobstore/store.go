package blobstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// DefaultLinkCacheTTL is Options.LinkCacheTTL on object storage, and
// touchInterval how often, at most, a pull-through cache hit rewrites a
// link's time there (the least-recently-used order of quota eviction needs
// minutes, not milliseconds).
const (
	DefaultLinkCacheTTL = 10 * time.Second
	touchInterval       = 10 * time.Minute
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
	// records (blob and link mtimes, upload activity) comes from it; on
	// object storage, object times come from the storage's clock.
	Now func() time.Time
	// LinkCacheTTL: a blob found linked into a repository is taken as
	// still linked for this long without asking the storage again (links
	// removed through this Store are forgotten at once; through another
	// replica, within the TTL). Zero means the default: none on a file
	// system (a stat is cheap), DefaultLinkCacheTTL on object storage.
	// Negative: none.
	LinkCacheTTL time.Duration
	// LocalCacheMaxBytes, on object storage, keeps copies of hot blobs on
	// this replica's disk (in LocalCacheDir, default Scratch/airlock-blob-cache),
	// at most this many bytes: a warm GET is then served from a local file
	// and asks the storage nothing. Zero: no local copies.
	LocalCacheMaxBytes int64
	LocalCacheDir      string
	// Scratch is the local directory for temp files on object storage
	// (a cache fill spools there while clients read it); "" means
	// os.TempDir(). Unused by Open, which keeps them under root/tmp.
	Scratch string
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

// Store is the registry storage over one Driver: a directory (Open) or an
// object storage container or bucket (OpenDriver). It is safe for
// concurrent use; see the package documentation for the contract.
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
	// repoList keeps the sorted repository list (listing.go).
	repoList repoListing
	// tagLists keeps the sorted tag lists of the last repositories asked.
	tagLists tagListings
	// gcRun serialises GC runs.
	gcRun sync.Mutex
	// repoMu keeps tag/revision/referrer updates of one repository in order.
	repoMu [repoLockStripes]sync.Mutex

	upMu    sync.Mutex
	uploads map[string]*Upload // live uploads, by id; guarded by upMu

	bufs sync.Pool // *[]byte copy buffers

	// drv is the byte-level storage under the store (driver.go); every
	// object goes through it. fsd is the same driver when it is the file
	// system (Open), nil on object storage (OpenDriver).
	drv Driver
	fsd *fsDriver
	// sizes remembers the size of blobs seen (digest → size; content
	// addressed, so it never changes): serving a known blob asks the
	// storage nothing but the GET.
	sizes sync.Map
	// linked remembers links seen (repo@digest → time seen or written) for
	// linkTTL, and touched when this Store last refreshed a link's time.
	linked  sync.Map
	touched sync.Map
	linkTTL time.Duration
	// lc keeps local copies of hot blobs (object storage with
	// Options.LocalCacheMaxBytes); nil otherwise.
	lc *localCache

	// tmp is this Store's own local directory for temp files: under
	// root/tmp, locked by tmpLock, on the file system (see tmp.go); a
	// scratch directory on object storage (cache fills spool there).
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
	s := newStoreCore(opt)
	s.root = abs
	s.fsd = &fsDriver{root: abs, tmp: s.tmpDir, now: s.now}
	if opt.LinkCacheTTL > 0 {
		s.linkTTL = opt.LinkCacheTTL
	}
	s.drv = s.fsd

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

// newStoreCore fills in what every Store has, whatever its driver.
func newStoreCore(opt Options) *Store {
	s := &Store{
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
	return s
}

// OpenDriver opens the store on object storage: every object goes through
// drv, and only temp files of cache fills in progress are local (in
// opt.Scratch). There is no cross-process lock on object storage; see the
// package documentation for what keeps GC safe there.
func OpenDriver(drv Driver, opt Options) (*Store, error) {
	s := newStoreCore(opt)
	s.drv = drv
	s.linkTTL = DefaultLinkCacheTTL
	if opt.LinkCacheTTL != 0 {
		s.linkTTL = max(opt.LinkCacheTTL, 0)
	}
	s.root = drv.String()
	scratch := opt.Scratch
	if scratch == "" {
		scratch = os.TempDir()
	}
	dir, lock, err := claimScratch(scratch)
	if err != nil {
		return nil, fmt.Errorf("open blob store %s: scratch directory: %w", drv, err)
	}
	s.tmp, s.tmpLock = dir, lock
	if n := cleanScratch(scratch, dir); n > 0 {
		s.log.Info("removed scratch directories of stores that are gone", keyPath, scratch, keyCount, n)
	}
	if opt.LocalCacheMaxBytes > 0 {
		cdir := opt.LocalCacheDir
		if cdir == "" {
			cdir = filepath.Join(scratch, "airlock-blob-cache")
		}
		if s.lc, err = openLocalCache(cdir, opt.LocalCacheMaxBytes, s.log); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("open blob store %s: local blob cache: %w", drv, err)
		}
	}
	return s, nil
}

// Root returns the absolute root directory (Open), or the storage's name
// (OpenDriver), as in "azblob://airlock".
func (s *Store) Root() string { return s.root }

// Location names the storage for logs and errors.
func (s *Store) Location() string { return s.drv.String() }

// Ping checks that the storage answers (for /readyz): one cheap request on
// object storage, the root directory on a file system.
func (s *Store) Ping(ctx context.Context) error {
	if p, ok := s.drv.(storage.Pinger); ok {
		return p.Ping(ctx)
	}
	_, err := os.Stat(s.root)
	return err
}

// SignedURL returns a time-limited URL from which blob d can be read
// directly from the storage (registry.storage.redirect), or
// errors.ErrUnsupported when the storage cannot sign one (the file system).
func (s *Store) SignedURL(ctx context.Context, d oci.Digest, ttl time.Duration) (string, error) {
	sg, ok := s.drv.(storage.Signer)
	if !ok {
		return "", fmt.Errorf("signed URL for %s: %w", s.drv, errors.ErrUnsupported)
	}
	d, err := checkDigest(d)
	if err != nil {
		return "", err
	}
	return sg.SignedURL(ctx, blobName(d), ttl)
}

// Object names. Every name is built from validated parts (oci.ParseName,
// oci.ParseDigest, oci.ValidTag, validUploadID), so none can climb out of
// its prefix or collide with a reserved '_' directory.

// repoName is repos/<name>.
func repoName(repo string) string { return dirRepos + "/" + repo }

func linkName(repo string, d oci.Digest) string {
	return repoName(repo) + "/" + dirLayers + "/" + string(d.Algorithm()) + "/" + d.Hex()
}

func revisionsName(repo string) string {
	return repoName(repo) + "/" + dirManifests + "/" + dirRevisions
}

func revisionName(repo string, d oci.Digest) string {
	return revisionsName(repo) + "/" + string(d.Algorithm()) + "/" + d.Hex()
}

func tagsName(repo string) string { return repoName(repo) + "/" + dirManifests + "/" + dirTags }

func tagName(repo, tag string) string { return tagsName(repo) + "/" + tag }

func referrersName(repo string, subject oci.Digest) string {
	return repoName(repo) + "/" + dirReferrers + "/" + string(subject.Algorithm()) + "/" + subject.Hex()
}

func referrerName(repo string, subject, d oci.Digest) string {
	return referrersName(repo, subject) + "/" + string(d.Algorithm()) + "-" + d.Hex() + ".json"
}

// checkRepo validates a repository name (the grammar rules out "..",
// absolute paths, NUL and components starting with '_' or '.').
func (s *Store) checkRepo(repo string) error {
	if _, err := oci.ParseName(repo); err != nil {
		return err
	}
	if strings.Contains(repo, "..") || strings.HasPrefix(repo, "/") {
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

func (s *Store) getBuf() *[]byte  { return s.bufs.Get().(*[]byte) }
func (s *Store) putBuf(b *[]byte) { s.bufs.Put(b) }
