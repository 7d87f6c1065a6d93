// Package blobstore is airlock's on-disk storage for the OCI registry and
// the pull-through cache: content-addressed blobs, resumable uploads, the
// per-repository index (manifest revisions, tags, blob links, referrers)
// and garbage collection. It does no HTTP. Its sentinel errors and its
// ManifestRecord are those of the storage contract (internal/storage), which
// internal/registry maps to OCI codes.
//
// Below the store is a byte-level Driver (driver.go): named objects with
// stat, get, ranged get, put, list, delete and a writer whose bytes appear
// under a name only on Commit, after the caller verified them. The
// filesystem implements it (fsDriver, over the same durable helpers the
// store uses); object storage implements it next and passes the same
// driver test. Blob stats and evictions go through it; the rest of the
// store still works on files directly.
//
// # Layout
//
//	root/blobs/<alg>/<2 hex>/<hex>                    blob bytes, immutable once renamed in
//	root/uploads/<id>/data                            upload bytes so far
//	root/uploads/<id>/state                           {size, updated} (JSON)
//	root/tmp/s-<pid>-<hex>/                           temp files of one open Store (flock'd)
//	root/lock                                         reference lock (flock) and token
//	root/repos/<name>/_manifests/revisions/<alg>/<hex> revision record: media type, subject,
//	                                                  artifactType, annotations (JSON)
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
// # Crash safety
//
// Nothing is ever written in place where a reader could see it. Blobs are
// written to the Store's temp directory, verified against their digest,
// fsynced, renamed into root/blobs and the directory fsynced; metadata files
// (revisions, tags, links, referrers) go the same way. A crash leaves at
// most files in that directory, which the next Open (or PurgeUploads) of
// any Store on the root deletes once the crashed one's lock is gone. An
// upload directory is assembled in the temp directory and renamed in; a
// removed one is renamed into it before deletion.
// An upload's state file records the size acknowledged to the client; after
// a crash in the middle of an append, the unacknowledged tail of the data
// file is cut off when the upload is loaded. Upload data and state are not
// fsynced per append (Commit verifies every byte before it becomes a blob,
// so a power loss can cost an upload, never corrupt a blob).
//
// Commit with a digest that does not match removes the upload as well (the
// distribution spec treats the upload as failed; the client starts over).
//
// # Concurrency
//
// Every method is safe for concurrent use. Several Stores, in one process or
// several (`airlock serve` and `airlock registry gc`, a restart that
// overlaps the old server, replicas on one disk), may use one root at once;
// what one of them owns, another never removes:
//   - Temp files: each Store writes them in its own directory under
//     root/tmp and holds an exclusive flock on it until Close or exit.
//     Open and PurgeUploads remove only owner directories whose lock they
//     can take (their owner is gone), and entries directly in root/tmp
//     (an older release's) unmodified for an hour (tmp.go).
//   - Upload sessions: whoever appends to, commits, loads (and may cut
//     back) or purges an upload holds an exclusive flock on its data file;
//     the others skip it (PurgeUploads) or fail at once with
//     ErrRangeInvalid (a request of another process is writing).
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
// Monolithic push: Put (tmp → verify → blobs) then LinkBlob. Chunked push:
// NewUpload, Append…, Commit (verify → blobs → link → upload removed).
// Manifest push: PutManifest (body → blobs, revision, referrer, tag). Pull:
// GetManifest/StatManifest, BlobLinked + Open. GC: mark from revisions,
// sweep links per repository, then blob files referenced by no repository.
package blobstore
