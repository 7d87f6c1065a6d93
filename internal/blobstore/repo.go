package blobstore

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/airlockdev/airlock/internal/oci"
)

// LinkBlob makes blob d part of repo (a push or a cross-repository mount).
// The blob must exist (ErrBlobUnknown otherwise). Linking refreshes the
// times of link and blob, which is what GC's grace period looks at.
func (s *Store) LinkBlob(repo string, d oci.Digest) error {
	if err := s.checkRepo(repo); err != nil {
		return fmt.Errorf("link blob: %w", err)
	}
	d, err := checkDigest(d)
	if err != nil {
		return fmt.Errorf("link blob: %w", err)
	}
	s.refRLock()
	defer s.refRUnlock()
	if err := s.linkLocked(repo, d); err != nil {
		return fmt.Errorf("link blob %s into %s: %w", d, repo, err)
	}
	return nil
}

// linkLocked links an existing blob into repo. The caller holds refMu shared.
func (s *Store) linkLocked(repo string, d oci.Digest) error {
	bp := s.blobPath(d)
	if err := s.touch(bp); err != nil {
		if isNotExist(err) {
			return ErrBlobUnknown
		}
		return err
	}
	lp := s.linkPath(repo, d)
	if err := s.touch(lp); err == nil {
		s.bumpGen()
		return nil
	} else if !isNotExist(err) {
		return err
	}
	if err := s.writeFileAtomic(lp, nil, s.now(), true); err != nil {
		return err
	}
	s.bumpGen()
	return nil
}

// BlobLinked returns the size of blob d if repo may serve it: linked into
// repo (as a layer/config blob or as a manifest revision) and present.
// Otherwise ErrBlobUnknown.
func (s *Store) BlobLinked(repo string, d oci.Digest) (int64, error) {
	if err := s.checkRepo(repo); err != nil {
		return 0, fmt.Errorf("blob in repository: %w", err)
	}
	d, err := checkDigest(d)
	if err != nil {
		return 0, fmt.Errorf("blob in repository: %w", err)
	}
	if _, err := os.Stat(s.linkPath(repo, d)); err != nil {
		if !isNotExist(err) {
			return 0, fmt.Errorf("blob %s in %s: %w", d, repo, err)
		}
		if _, err := os.Stat(s.revisionPath(repo, d)); err != nil {
			if isNotExist(err) {
				return 0, fmt.Errorf("blob %s in %s: %w", d, repo, ErrBlobUnknown)
			}
			return 0, fmt.Errorf("blob %s in %s: %w", d, repo, err)
		}
	}
	return s.Stat(d)
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
	if err := removeDurable(s.linkPath(repo, d)); err != nil {
		if isNotExist(err) {
			return fmt.Errorf("unlink blob %s from %s: %w", d, repo, ErrBlobUnknown)
		}
		return fmt.Errorf("unlink blob %s from %s: %w", d, repo, err)
	}
	return nil
}

// repoExists reports whether repo holds at least one manifest revision, tag
// or blob link.
func (s *Store) repoExists(repo string) (bool, error) {
	dir := s.repoDir(repo)
	for _, sub := range []string{
		filepath.Join(dirManifests, dirRevisions, string(oci.SHA256)),
		filepath.Join(dirManifests, dirRevisions, string(oci.SHA512)),
		filepath.Join(dirManifests, dirTags),
		filepath.Join(dirLayers, string(oci.SHA256)),
		filepath.Join(dirLayers, string(oci.SHA512)),
	} {
		empty, err := dirEmpty(filepath.Join(dir, sub))
		if err != nil {
			return false, err
		}
		if !empty {
			return true, nil
		}
	}
	return false, nil
}

// Repositories lists every repository with at least one manifest, tag or
// blob link, sorted.
func (s *Store) Repositories() ([]string, error) {
	var out []string
	if err := s.walkRepos(func(name string) error {
		ok, err := s.repoExists(name)
		if err != nil {
			return err
		}
		if ok {
			out = append(out, name)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// walkRepos calls fn for every directory under root/repos that could be a
// repository (a valid name made of non-reserved components), whether or not
// it holds anything.
func (s *Store) walkRepos(fn func(name string) error) error {
	var walk func(rel string) error
	walk = func(rel string) error {
		entries, err := os.ReadDir(filepath.Join(s.reposDir(), filepath.FromSlash(rel)))
		if err != nil {
			if isNotExist(err) {
				return nil
			}
			return err
		}
		for _, e := range entries {
			n := e.Name()
			if !e.IsDir() || strings.HasPrefix(n, "_") {
				continue
			}
			name := n
			if rel != "" {
				name = rel + "/" + n
			}
			if _, err := oci.ParseName(name); err != nil {
				s.log.Warn("foreign entry in repository tree left alone", keyPath, filepath.Join(s.reposDir(), filepath.FromSlash(name)))
				continue
			}
			if err := fn(name); err != nil {
				return err
			}
			if err := walk(name); err != nil {
				return err
			}
		}
		return nil
	}
	return walk("")
}

// listDigests lists the files of dir/<alg>/<hex> as digests with their
// modification times. Entries that are not valid digests are skipped.
func listDigests(dir string, fn func(d oci.Digest, fi os.FileInfo) error) error {
	for _, alg := range []oci.Algorithm{oci.SHA256, oci.SHA512} {
		entries, err := os.ReadDir(filepath.Join(dir, string(alg)))
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return err
		}
		for _, e := range entries {
			d, err := oci.ParseDigest(string(alg) + ":" + e.Name())
			if err != nil || !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				if isNotExist(err) {
					continue
				}
				return err
			}
			if err := fn(d, fi); err != nil {
				return err
			}
		}
	}
	return nil
}
