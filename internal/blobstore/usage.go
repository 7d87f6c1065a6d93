package blobstore

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

// LinkInfo describes one blob linked into a repository. LastUsed is the
// link's time: set when linked, refreshed by TouchLink (the pull-through
// cache calls it on every hit, so it orders eviction).
type LinkInfo struct {
	Repo     string
	Digest   oci.Digest
	Size     int64
	LastUsed time.Time
}

// Links calls fn for every blob linked into repo whose blob file exists.
func (s *Store) Links(repo string, fn func(LinkInfo) error) error {
	if err := s.checkRepo(repo); err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	return listDigests(filepath.Join(s.repoDir(repo), dirLayers), func(d oci.Digest, fi os.FileInfo) error {
		size, err := s.Stat(d)
		if err != nil {
			return nil // collected meanwhile
		}
		return fn(LinkInfo{Repo: repo, Digest: d, Size: size, LastUsed: fi.ModTime()})
	})
}

// TouchLink marks blob d of repo as used now. A missing link is not an error.
func (s *Store) TouchLink(repo string, d oci.Digest) error {
	if err := s.checkRepo(repo); err != nil {
		return err
	}
	if _, err := checkDigest(d); err != nil {
		return err
	}
	if err := s.touch(s.linkPath(repo, d)); err != nil && !isNotExist(err) {
		return err
	}
	return nil
}

// TagInfo is one tag of a repository.
type TagInfo struct {
	Tag     string
	Digest  oci.Digest
	Updated time.Time
}

// TagInfos lists repo's tags with their digests and the time each was
// last written, sorted by tag.
func (s *Store) TagInfos(repo string) ([]TagInfo, error) {
	tags, err := s.Tags(repo)
	if err != nil {
		return nil, err
	}
	out := make([]TagInfo, 0, len(tags))
	for _, t := range tags {
		p := s.tagPath(repo, t)
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		d, _, _, err := s.StatManifest(repo, t)
		if err != nil {
			continue
		}
		out = append(out, TagInfo{Tag: t, Digest: d, Updated: fi.ModTime()})
	}
	return out, nil
}

// Evict removes blob d from repo and, when no repository links it any
// more (as a blob or as a manifest), deletes the file. It reports the bytes
// freed (0 when another repository still holds the blob). The check and the
// delete run under the store's exclusive reference lock (across processes),
// so a concurrent link either happens before (and the file stays) or finds
// the blob gone (and the caller fetches it again).
func (s *Store) Evict(repo string, d oci.Digest) (int64, error) {
	if err := s.UnlinkBlob(repo, d); err != nil {
		return 0, err
	}
	if err := s.refLockExclusive(); err != nil {
		return 0, fmt.Errorf("evict %s: %w", d, err)
	}
	defer s.refUnlockExclusive()
	held := false
	err := s.walkRepos(func(name string) error {
		for _, p := range []string{s.linkPath(name, d), s.revisionPath(name, d)} {
			if _, err := os.Stat(p); err == nil {
				held = true
				return filepath.SkipAll
			}
		}
		return nil
	})
	if err != nil && err != filepath.SkipAll {
		return 0, fmt.Errorf("evict %s: %w", d, err)
	}
	if held {
		return 0, nil
	}
	size, err := s.Stat(d)
	if err != nil {
		return 0, nil
	}
	if err := s.drv.Delete(blobName(d)); err != nil && !isNotExist(err) {
		return 0, fmt.Errorf("evict %s: %w", d, err)
	}
	s.bumpGen()
	return size, nil
}
