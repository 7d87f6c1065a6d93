// Package blobstore is airlock's on-disk storage for the OCI registry and
// the pull-through cache: content-addressed blobs, resumable uploads, the
// per-repository index (manifest revisions, tags, blob links, referrers)
// and garbage collection. It does no HTTP; internal/registry maps its
// sentinel errors (ErrBlobUnknown, ErrManifestUnknown, …) to OCI codes.
//
// # Layout
//
//	root/blobs/<alg>/<2 hex>/<hex>                    blob bytes, immutable once renamed in
//	root/uploads/<id>/data                            upload bytes so far
//	root/uploads/<id>/state                           {size, updated} (JSON)
//	root/tmp/                                         temp files; emptied by Open
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
// written to root/tmp, verified against their digest, fsynced, renamed into
// root/blobs and the directory fsynced; metadata files (revisions, tags,
// links, referrers) go the same way. A crash leaves at most files in
// root/tmp, which Open deletes. An upload directory is assembled in root/tmp
// and renamed in; a removed one is renamed into root/tmp before deletion.
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
// Every method is safe for concurrent use within one process; a root must
// be used by one process at a time (nothing locks it across processes).
//   - Concurrent Puts or Commits of one digest each write their own temp
//     file and rename identical bytes into place; all succeed.
//   - All requests for an upload id share one *Upload. Append takes its lock
//     with TryLock: a second concurrent append fails with ErrRangeInvalid
//     instead of queueing; Commit and Cancel wait for the lock.
//   - Manifest, tag and referrer updates of one repository are serialised by
//     a striped per-repository mutex, so a delete never races a put into a
//     dangling tag.
//   - Every operation that creates a reference (blob rename or touch, link,
//     manifest) holds a store-wide RWMutex shared for a few file operations
//     and bumps a generation counter. GC plans without the lock, then takes
//     it exclusively and applies its plan only if the generation did not
//     move; after two failed attempts it plans under the lock. So GC never
//     acts on a stale view: whatever was written, linked or referenced
//     within the grace period before the deletion, even during the GC run,
//     is kept; and long streams (uploads, serving) never wait for GC.
//   - A blob file deleted by GC while being served stays readable through
//     the open *os.File.
//
// Remaining window, inherent to any registry GC: a client that saw an old,
// unreferenced blob in a repository (HEAD) before GC removed its link, then
// pushes a manifest referencing it after, finds the link gone. The registry
// should check that referenced blobs are linked when it accepts a manifest
// (MANIFEST_BLOB_UNKNOWN), and the client re-pushes.
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
