package blobstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

// Listings at scale. The catalog (Repositories) is asked a page at a time,
// and every page needs the whole sorted list; walking every object under
// repos/ per page made paging through 10,000 repositories quadratic. So:
//
//   - On a file system the list is built from directories alone: a
//     directory is a repository when something is under its
//     _manifests/revisions, _manifests/tags or _layers (the first entry
//     found answers), and no file is ever stat'ed. Tags are one readdir of
//     the tags directory, without a stat per tag.
//   - The sorted list is kept and reused while the reference state (this
//     process's generation and the token in root/lock) has not moved.
//     Every operation that adds or removes a revision, tag or link, in any
//     process on the root, moves it, so the kept list is never stale on a
//     file system. On object storage there is no token: a list is reused
//     for at most the link cache TTL (10 s by default; a repository created
//     or emptied through another replica shows within it, one through this
//     Store at once), and not at all with LinkCacheTTL < 0. Tag lists of
//     the last repositories asked are kept the same way, so paging
//     through 10,000 tags reads the directory once, not once per page.

// keptTags bounds how many repositories' tag lists are kept.
const keptTags = 32

// tagListing is one repository's kept tag list (sorted).
type tagListing struct {
	names []string
	state refState
	at    time.Time
}

// tagListings are the kept tag lists, by repository.
type tagListings struct {
	mu sync.Mutex
	m  map[string]tagListing
}

// sortedTags returns repo's valid tags sorted, from the kept list while
// the reference state has not moved (as Repositories). The caller may
// modify the slice.
func (s *Store) sortedTags(repo string) ([]string, error) {
	st, stErr := s.refState()
	c := &s.tagLists
	if stErr == nil {
		c.mu.Lock()
		k, ok := c.m[repo]
		c.mu.Unlock()
		if ok && k.state == st && (s.fsd != nil || time.Since(k.at) < s.linkTTL) {
			return slices.Clone(k.names), nil
		}
	}
	tags, err := s.tagNames(repo)
	if err != nil {
		return nil, err
	}
	slices.Sort(tags)
	if stErr == nil && (s.fsd != nil || s.linkTTL > 0) {
		c.mu.Lock()
		if c.m == nil {
			c.m = map[string]tagListing{}
		}
		if len(c.m) >= keptTags {
			for r, k := range c.m {
				if k.state != st || len(c.m) >= keptTags {
					delete(c.m, r)
				}
			}
		}
		c.m[repo] = tagListing{names: tags, state: st, at: time.Now()}
		c.mu.Unlock()
	}
	return slices.Clone(tags), nil
}

// repoListing is the kept repository list.
type repoListing struct {
	mu    sync.Mutex // held while listing: concurrent callers share one walk
	ok    bool
	names []string
	state refState
	at    time.Time
}

// Repositories lists every repository with at least one manifest, tag or
// blob link, sorted. The caller may modify the slice.
func (s *Store) Repositories() ([]string, error) {
	c := &s.repoList
	c.mu.Lock()
	defer c.mu.Unlock()
	st, stErr := s.refState()
	if stErr == nil && c.ok && c.state == st && (s.fsd != nil || time.Since(c.at) < s.linkTTL) {
		// Kept: fresh on a file system (see above); on object storage
		// for the link cache TTL (none when that is off).
		return slices.Clone(c.names), nil
	}
	var names []string
	var err error
	if s.fsd != nil {
		names, err = s.fsRepositories()
	} else {
		names, err = s.objRepositories()
	}
	if err != nil {
		c.ok = false
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	slices.Sort(names)
	c.ok = stErr == nil
	c.names, c.state, c.at = names, st, time.Now()
	return slices.Clone(names), nil
}

// objRepositories lists every object under repos/ once.
func (s *Store) objRepositories() ([]string, error) {
	seen := map[string]bool{}
	err := s.list(dirRepos, func(o ObjectInfo) error {
		if repo, ok := s.repoOf(o.Name); ok {
			seen[repo] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for r := range seen {
		out = append(out, r)
	}
	return out, nil
}

// fsRepositories walks root/repos by directory (unsorted result). A
// repository is a directory whose _manifests/revisions, _manifests/tags
// or _layers holds a file, as repoOf decides for object names.
func (s *Store) fsRepositories() ([]string, error) {
	var out []string
	var walk func(dir, name string) error
	walk = func(dir, name string) error {
		entries, err := readDirAll(dir)
		if err != nil {
			if isNotExist(err) {
				return nil // removed while listing
			}
			return err
		}
		own := false
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			n := e.Name()
			if strings.HasPrefix(n, "_") {
				if own || name == "" {
					continue
				}
				switch n {
				case dirManifests:
					if own, err = hasFile(filepath.Join(dir, n, dirRevisions)); err == nil && !own {
						own, err = hasFile(filepath.Join(dir, n, dirTags))
					}
				case dirLayers:
					own, err = hasFile(filepath.Join(dir, n))
				}
				if err != nil {
					return err
				}
				continue
			}
			child := n
			if name != "" {
				child = name + "/" + n
			}
			if err := walk(filepath.Join(dir, n), child); err != nil {
				return err
			}
		}
		if own {
			if _, err := oci.ParseName(name); err != nil {
				s.log.Warn("foreign object in repository tree left alone", keyPath, dirRepos+"/"+name)
			} else {
				out = append(out, name)
			}
		}
		return nil
	}
	if err := walk(filepath.Join(s.root, dirRepos), ""); err != nil {
		return nil, err
	}
	return out, nil
}

// readDirAll reads a directory's entries unsorted (the file type comes
// from the directory itself: no stat).
func readDirAll(dir string) ([]os.DirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// hasFile reports whether a regular file is somewhere under dir, reading
// as little as it can: the first file found answers.
func hasFile(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		if isNotExist(err) {
			return false, nil
		}
		return false, err
	}
	defer f.Close()
	for {
		entries, err := f.ReadDir(64)
		for _, e := range entries {
			switch {
			case e.Type().IsRegular():
				return true, nil
			case e.IsDir():
				if ok, err := hasFile(filepath.Join(dir, e.Name())); ok || err != nil {
					return ok, err
				}
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && len(entries) == 0) {
			return false, nil
		}
		if err != nil {
			if isNotExist(err) {
				return false, nil
			}
			return false, err
		}
	}
}

// fsTagNames lists the valid tag files of repo with one readdir (no stat
// per tag), unsorted.
func (s *Store) fsTagNames(repo string) ([]string, error) {
	entries, err := readDirAll(filepath.Join(s.root, filepath.FromSlash(tagsName(repo))))
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	tags := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Type().IsRegular() && oci.ValidTag(e.Name()) {
			tags = append(tags, e.Name())
		}
	}
	return tags, nil
}
