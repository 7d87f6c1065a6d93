package blobstore

import (
	"fmt"
	"strings"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

// LinkBlob makes blob d part of repo (a push or a cross-repository mount).
// The blob must exist (ErrBlobUnknown otherwise). Linking refreshes the
// times of link and blob, which is what GC's grace period looks at.
func (s *Store) LinkBlob(repo string, d oci.Digest) error { return s.link(repo, d, false) }

// link is LinkBlob; committed says the caller has just committed the blob
// itself, so on object storage its existence need not be asked again.
func (s *Store) link(repo string, d oci.Digest, committed bool) error {
	if err := s.checkRepo(repo); err != nil {
		return fmt.Errorf("link blob: %w", err)
	}
	d, err := checkDigest(d)
	if err != nil {
		return fmt.Errorf("link blob: %w", err)
	}
	s.refRLock()
	defer s.refRUnlock()
	if err := s.linkLocked(repo, d, committed); err != nil {
		return fmt.Errorf("link blob %s into %s: %w", d, repo, err)
	}
	return nil
}

// linkLocked links an existing blob into repo (committed: the caller just
// committed it). The caller holds refMu shared.
func (s *Store) linkLocked(repo string, d oci.Digest, committed bool) error {
	if t, ok := s.drv.(toucher); ok {
		// File system: refresh the blob's time (GC's grace) and the link's.
		if err := t.Touch(s.ctx(), blobName(d)); err != nil {
			if isNotExist(err) {
				return ErrBlobUnknown
			}
			return err
		}
		if err := t.Touch(s.ctx(), linkName(repo, d)); err == nil {
			s.bumpGen()
			return nil
		} else if !isNotExist(err) {
			return err
		}
	} else if !committed {
		if _, err := s.Stat(d); err != nil {
			return err
		}
	}
	// Object storage: blobs keep their creation time; a link is written
	// (or rewritten, which refreshes its time) in one request.
	if err := s.putObj(linkName(repo, d), nil); err != nil {
		return err
	}
	s.bumpGen()
	return nil
}

// BlobLinked returns the size of blob d if repo may serve it: linked into
// repo (as a layer/config blob or as a manifest revision) and present.
// Otherwise ErrBlobUnknown. A blob's size is remembered once seen, so on
// object storage this asks only for the link.
func (s *Store) BlobLinked(repo string, d oci.Digest) (int64, error) {
	if err := s.checkRepo(repo); err != nil {
		return 0, fmt.Errorf("blob in repository: %w", err)
	}
	d, err := checkDigest(d)
	if err != nil {
		return 0, fmt.Errorf("blob in repository: %w", err)
	}
	key := repo + "@" + string(d)
	if s.linkTTL > 0 {
		if t, ok := s.linked.Load(key); ok && s.now().Sub(t.(time.Time)) < s.linkTTL {
			return s.knownSize(d)
		}
	}
	ok, err := s.exists(linkName(repo, d))
	if err == nil && !ok {
		ok, err = s.exists(revisionName(repo, d))
	}
	if err != nil {
		return 0, fmt.Errorf("blob %s in %s: %w", d, repo, err)
	}
	if !ok {
		return 0, fmt.Errorf("blob %s in %s: %w", d, repo, ErrBlobUnknown)
	}
	if s.linkTTL > 0 {
		s.linked.Store(key, s.now())
	}
	return s.knownSize(d)
}

// UnlinkBlob removes blob d from repo (the blob file stays until GC finds
// it unused). ErrBlobUnknown if it was not linked.
func (s *Store) UnlinkBlob(repo string, d oci.Digest) error {
	if err := s.checkRepo(repo); err != nil {
		return fmt.Errorf("unlink blob: %w", err)
	}
	d, err := checkDigest(d)
	if err != nil {
		return fmt.Errorf("unlink blob: %w", err)
	}
	s.refRLock()
	defer s.refRUnlock()
	s.forgetLink(repo, d)
	if err := s.deleteObj(linkName(repo, d)); err != nil {
		if isNotExist(err) {
			return fmt.Errorf("unlink blob %s from %s: %w", d, repo, ErrBlobUnknown)
		}
		return fmt.Errorf("unlink blob %s from %s: %w", d, repo, err)
	}
	s.bumpGen() // the repository may be gone from the catalog
	return nil
}

// forgetLink drops what this Store remembers of a link it removes.
func (s *Store) forgetLink(repo string, d oci.Digest) {
	s.linked.Delete(repo + "@" + string(d))
	s.touched.Delete(repo + "@" + string(d))
}

// repoExists reports whether repo holds at least one manifest revision, tag
// or blob link of its own (not of a repository nested under it).
func (s *Store) repoExists(repo string) (bool, error) {
	prefix := repoName(repo) + "/"
	return s.anyObj(repoName(repo), func(o ObjectInfo) bool {
		return ownsObject(strings.TrimPrefix(o.Name, prefix))
	})
}

// ownsObject reports whether rest (an object name below repos/<name>/)
// is a revision, tag or blob link of that repository itself.
func ownsObject(rest string) bool {
	return strings.HasPrefix(rest, dirManifests+"/"+dirRevisions+"/") ||
		strings.HasPrefix(rest, dirManifests+"/"+dirTags+"/") ||
		strings.HasPrefix(rest, dirLayers+"/")
}

// repoOf returns the repository an object under repos/ belongs to when it
// is one of its revisions, tags or links: the name's components up to the
// first reserved '_' one.
func (s *Store) repoOf(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, dirRepos+"/")
	if !ok {
		return "", false
	}
	i := strings.Index(rest, "/_")
	if i <= 0 || !ownsObject(rest[i+1:]) {
		return "", false
	}
	repo := rest[:i]
	if _, err := oci.ParseName(repo); err != nil {
		s.log.Warn("foreign object in repository tree left alone", keyPath, name)
		return "", false
	}
	return repo, true
}

// listDigests lists the objects <prefix>/<alg>/<hex> as digests with their
// infos. Objects that are not valid digests are skipped.
func (s *Store) listDigests(prefix string, fn func(d oci.Digest, o ObjectInfo) error) error {
	return s.list(prefix, func(o ObjectInfo) error {
		d, ok := digestUnder(prefix, o.Name)
		if !ok {
			return nil
		}
		return fn(d, o)
	})
}
