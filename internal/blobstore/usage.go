package blobstore

import (
	"errors"
	"fmt"
	"slices"
	"strings"
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

// Links calls fn for every blob linked into repo whose size is known
// (the blob exists or existed: a blob collected meanwhile fails later at
// Open with ErrBlobUnknown).
func (s *Store) Links(repo string, fn func(LinkInfo) error) error {
	if err := s.checkRepo(repo); err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	prefix := repoName(repo) + "/" + dirLayers
	return s.list(prefix, func(o ObjectInfo) error {
		rest := strings.TrimPrefix(o.Name, prefix+"/")
		alg, hex, ok := strings.Cut(rest, "/")
		if !ok {
			return nil
		}
		d, err := oci.ParseDigest(alg + ":" + hex)
		if err != nil {
			return nil
		}
		size, err := s.knownSize(d)
		if err != nil {
			return nil // collected meanwhile
		}
		return fn(LinkInfo{Repo: repo, Digest: d, Size: size, LastUsed: o.ModTime})
	})
}

// TouchLink marks blob d of repo as used now. A missing link is not an
// error. On object storage that rewrites the (empty) link object.
func (s *Store) TouchLink(repo string, d oci.Digest) error {
	if err := s.checkRepo(repo); err != nil {
		return err
	}
	if _, err := checkDigest(d); err != nil {
		return err
	}
	if _, ok := s.drv.(toucher); !ok {
		// Object storage: a rewrite per hit would double the requests of
		// every cached pull; once per touchInterval keeps the LRU order.
		key := repo + "@" + string(d)
		if t, ok := s.touched.Load(key); ok && s.now().Sub(t.(time.Time)) < touchInterval {
			return nil
		}
		if ok, err := s.exists(linkName(repo, d)); err != nil || !ok {
			return err
		}
		s.touched.Store(key, s.now())
	}
	if err := s.touchObj(linkName(repo, d), nil); err != nil && !isNotExist(err) {
		return err
	}
	return nil
}

// TagTime returns when tag of repo was last written or touched (a
// pull-through cache records there when it last fetched or revalidated
// the tag, so every replica sees it). ErrTagUnknown when there is none.
func (s *Store) TagTime(repo, tag string) (time.Time, error) {
	if err := s.checkRepo(repo); err != nil {
		return time.Time{}, err
	}
	if err := checkTag(tag); err != nil {
		return time.Time{}, err
	}
	info, err := s.statObj(tagName(repo, tag))
	if err != nil {
		if isNotExist(err) {
			return time.Time{}, fmt.Errorf("tag %s:%s: %w", repo, tag, ErrTagUnknown)
		}
		return time.Time{}, err
	}
	return info.ModTime, nil
}

// TouchTag records now as tag's time, keeping its target (on object
// storage: the tag object is rewritten with the digest it holds).
func (s *Store) TouchTag(repo, tag string) error {
	if err := s.checkRepo(repo); err != nil {
		return err
	}
	if err := checkTag(tag); err != nil {
		return err
	}
	name := tagName(repo, tag)
	if t, ok := s.drv.(toucher); ok {
		return t.Touch(s.ctx(), name)
	}
	unlock := s.lockRepo(repo)
	defer unlock()
	b, err := s.readSmall(name, 256)
	if err != nil {
		return err
	}
	return s.putObj(name, b)
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
	if err := s.checkRepo(repo); err != nil {
		return nil, err
	}
	prefix := tagsName(repo)
	var out []TagInfo
	err := s.list(prefix, func(o ObjectInfo) error {
		t, ok := strings.CutPrefix(o.Name, prefix+"/")
		if !ok || !oci.ValidTag(t) {
			return nil
		}
		out = append(out, TagInfo{Tag: t, Updated: o.ModTime})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", repo, err)
	}
	kept := out[:0]
	for _, ti := range out {
		d, _, _, err := s.StatManifest(repo, ti.Tag)
		if err != nil {
			continue
		}
		ti.Digest = d
		kept = append(kept, ti)
	}
	slices.SortFunc(kept, func(a, b TagInfo) int { return strings.Compare(a.Tag, b.Tag) })
	return kept, nil
}

// Evict removes blob d from repo and, when no repository links it any
// more (as a blob or as a manifest), deletes the blob. It reports the bytes
// freed (0 when another repository still holds the blob). On a file system
// the check and the delete run under the store's exclusive reference lock
// (across processes), so a concurrent link either happens before (and the
// file stays) or finds the blob gone (and the caller fetches it again); on
// object storage the window between them is the one doc.go describes.
func (s *Store) Evict(repo string, d oci.Digest) (int64, error) {
	if err := s.UnlinkBlob(repo, d); err != nil {
		return 0, err
	}
	if err := s.refLockExclusive(); err != nil {
		return 0, fmt.Errorf("evict %s: %w", d, err)
	}
	defer s.refUnlockExclusive()
	held := false
	err := s.list(dirRepos, func(o ObjectInfo) error {
		rest, ok := strings.CutPrefix(o.Name, dirRepos+"/")
		if !ok {
			return nil
		}
		if strings.HasSuffix(rest, "/"+dirLayers+"/"+string(d.Algorithm())+"/"+d.Hex()) ||
			strings.HasSuffix(rest, "/"+dirManifests+"/"+dirRevisions+"/"+string(d.Algorithm())+"/"+d.Hex()) {
			held = true
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return 0, fmt.Errorf("evict %s: %w", d, err)
	}
	if held {
		return 0, nil
	}
	size, err := s.Stat(d)
	if err != nil {
		return 0, nil
	}
	if err := s.deleteObj(blobName(d)); err != nil && !isNotExist(err) {
		return 0, fmt.Errorf("evict %s: %w", d, err)
	}
	s.sizes.Delete(d)
	if s.lc != nil {
		s.lc.remove(d)
	}
	s.bumpGen()
	return size, nil
}
