// Package blobstore is airlock's storage for the OCI registry and the
// pull-through cache: content-addressed blobs, resumable uploads, the
// per-repository index (manifest revisions, tags, blob links, referrers)
// and garbage collection. It does no HTTP. Its sentinel errors and its
// ManifestRecord are those of the storage contract (internal/storage), which
// internal/registry maps to OCI codes.
//
// Every object goes through a byte-level storage.Driver: the file system
// (fsDriver, Open), Azure Blob Storage or S3 (internal/storage/azblob and
// s3, OpenDriver). The store needs only what every driver gives (whole
// objects replaced atomically, a create-if-absent, a writer whose bytes
// appear under their name only on Commit, listing by prefix); the file
// system adds a cross-process lock for GC, cheap time refreshes and
// renames. docs/storage.md says which operation is atomic on which backend.
//
// # Layout
//
//	root/blobs/<alg>/<2 hex>/<hex>                    blob bytes, immutable once renamed in
//	root/uploads/<id>/state                           {size, sha256 state, parts, times} (JSON)
//	root/uploads/<id>/p-<start>-<random>              the bytes of one append
//	root/tmp/s-<pid>-<hex>/                           temp files of one open Store (flock'd)
//	root/lock                                         reference lock (flock) and token
//	root/repos/<name>/_manifests/revisions/<alg>/<hex> revision record: media type, subject,
//	                                                  artifactType, annotations, body (JSON)
//	root/repos/<name>/_manifests/tags/<tag>           the tagged digest (one flat file per
//	                                                  tag: listing is one readdir)
//	root/repos/<name>/_layers/<alg>/<hex>             empty file: blob linked into the repo
//	root/repos/<name>/_referrers/<alg>/<hex>/<alg>-<hex>.json
//	                                                  descriptor of a manifest whose
//	                                                  subject is <alg>:<hex>
//
// <name> is the repository name with '/' as directory separator; names are
// checked with oci.ParseName, whose components never start with '_' or '.',
// so they cannot climb out of root/repos or collide with the '_' directories.
// Tags (oci.ValidTag), digests (oci.ParseDigest) and upload ids (exactly 32
// lowercase hex, as NewUpload makes them) are validated likewise before any
// path is built. File mtimes of blobs and links are set from Options.Now and
// are what GC's grace period compares.
//
// On object storage the names are the same, relative to the container or
// bucket; root/tmp and root/lock do not exist there (temp files of cache
// fills go to a local scratch directory).
//
// # Crash safety
//
// Nothing is ever written in place where a reader could see it. On a file
// system, blobs are written to the Store's temp directory, verified against
// their digest, fsynced, renamed into root/blobs and the directory fsynced;
// metadata files (revisions, tags, links, referrers, upload states and
// parts) go the same way. A crash leaves at most files in that directory,
// which the next Open (or PurgeUploads) of any Store on the root deletes
// once the crashed one's lock is gone. On object storage a write cut off
// before Commit leaves uncommitted blocks (Azure: discarded by the service
// after 7 days, or by the next commit of that name) or an unfinished
// multipart upload (S3: GC aborts it after the upload TTL); neither is
// visible under any name.
//
// An upload append writes its part whole, then replaces the state object,
// which lists the parts and holds the running sha256 state: a crash in
// between leaves a part no state lists, ignored and deleted with the
// upload. So any Store on the same storage (a replica, a restart)
// continues an upload from its state, and Commit checks the digest from
// the saved hash, then streams the parts through a verifying blob writer
// (the file system renames a single part instead).
//
// Commit with a digest that does not match removes the upload as well (the
// distribution spec treats the upload as failed; the client starts over).
//
// # Concurrency
//
// Every method is safe for concurrent use. Several Stores, in one process or
// several (`airlock serve` and `airlock registry gc`, a restart that
// overlaps the old server, replicas on one disk or one container or
// bucket), may use one root at once.
//
// On object storage there are no cross-process locks: every write is one
// atomic object operation (see Crash safety), GC keeps what is younger
// than its grace period by the objects' own times, and the window that
// remains is the one below (a reference created between GC's listing and
// its delete). Upload appends serialise within a Store; across Stores a
// concurrent append to one upload (a client bug) loses one of them, and
// Commit's digest check fails the push rather than storing a wrong blob.
//
// On a file system, what one Store owns another never removes:
//   - Temp files: each Store writes them in its own directory under
//     root/tmp and holds an exclusive flock on it until Close or exit.
//     Open and PurgeUploads remove only owner directories whose lock they
//     can take (their owner is gone), and entries directly in root/tmp
//     (an older release's) unmodified for an hour (tmp.go).
//   - Upload sessions: appends serialise on the upload within a Store
//     (TryLock: a concurrent append fails with ErrRangeInvalid); the purge
//     removes only uploads idle past the TTL by their state's time.
//   - References: see the reference lock below; it spans processes.
//   - Fresh blobs: GC keeps blobs and links younger than its grace period,
//     so a blob pushed for a manifest not yet pushed survives it.
//
// The locks are flock(2) locks: the root must be on a local file system (or
// one whose flock works across its clients). Within and across Stores:
//   - Concurrent Puts or Commits of one digest each write their own temp
//     file and rename identical bytes into place; all succeed.
//   - All requests to one Store for an upload id share one *Upload.
//     Append takes its lock with TryLock: a second concurrent append fails
//     with ErrRangeInvalid instead of queueing; Commit and Cancel wait for
//     the lock.
//   - Manifest, tag and referrer updates of one repository are serialised by
//     a striped per-repository mutex, so a delete never races a put into a
//     dangling tag.
//   - Every operation that creates a reference (blob rename or touch, link,
//     manifest) holds the reference lock shared for a few file operations
//     (a store-wide RWMutex, plus a flock on root/lock taken by a Store's
//     first such operation and released by its last), bumps a generation
//     counter and writes a fresh random token into root/lock. GC plans
//     without the lock, then takes it exclusively (RWMutex and flock) and
//     applies its plan only if neither the generation nor the token moved;
//     after two failed attempts it plans under the lock. So GC, in this
//     process or another, never acts on a stale view: whatever was written,
//     linked or referenced within the grace period before the deletion,
//     even during the GC run, is kept; and long streams (uploads, serving)
//     never wait for GC. Evict takes the lock exclusively too.
//   - A blob file deleted by GC while being served stays readable through
//     the open *os.File.
//
// Remaining window, inherent to any registry GC: a client that saw an old
// (older than the grace period), unreferenced blob in a repository (HEAD)
// before GC removed its link, then pushes a manifest referencing it after,
// finds the link gone. The registry checks that referenced blobs are linked
// when it accepts a manifest (MANIFEST_BLOB_UNKNOWN), and the client
// re-pushes. That check and PutManifest are two steps, so a GC whose
// deletion lands between them (microseconds) still lets such a manifest in
// with the old blob gone.
//
// # Choices the registry relies on
//
//   - Upload.Append returns the upload's new total size, not the count
//     appended (the Range header needs the total).
//   - Put of a blob that already exists still reads and verifies r, writes
//     nothing, and refreshes the blob's time.
//   - Commit with a wrong digest removes the upload (see above).
//   - BlobLinked also answers for manifest revisions, so a manifest can be
//     fetched through the blob endpoint, as distribution allows.
//   - ErrTagUnknown wraps ErrManifestUnknown. DeleteManifest and DeleteTag
//     answer ErrManifestUnknown/ErrTagUnknown; GetManifest, StatManifest,
//     Tags and Referrers answer ErrNameUnknown when the repository holds no
//     manifest, tag or blob link at all.
//   - Invalid names, tags and digests wrap the internal/oci sentinels,
//     re-exported here (ErrNameInvalid, ErrReferenceInvalid,
//     ErrDigestInvalid, ErrDigestUnsupported); an upload id this store did
//     not issue is ErrUploadUnknown.
//
// # Data flow
//
// Monolithic push: Put (writer → verify → Commit) then LinkBlob. Chunked
// push: NewUpload, Append… (part, state), Commit (verify → blob → link →
// upload removed).
// Manifest push: PutManifest (body → blobs, revision, referrer, tag). Pull:
// GetManifest/StatManifest, BlobLinked + Open. GC: mark from revisions,
// sweep links per repository, then blob files referenced by no repository.
package blobstore
