package blobstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

// GCReport says what a GC run removed (or, for a dry run, would remove).
type GCReport struct {
	DryRun bool
	// Blobs are the blob files deleted, sorted; Bytes their total size.
	Blobs []oci.Digest
	Bytes int64
	// Links is the number of repository blob links removed; RemovedLinks
	// lists them.
	Links        int
	RemovedLinks []BlobLink
	// Repositories and Manifests count what was scanned; Kept is the number
	// of blob files left in place, of which Protected only because they are
	// younger than the grace period.
	Repositories int
	Manifests    int
	Kept         int
	Protected    int
	// Unparsable lists "repo@digest" of manifests that could not be parsed;
	// their repository keeps every blob link this run.
	Unparsable []string
	// Attempts is how many times the plan was made (pushes during GC make
	// it start over; the last attempt plans under the exclusive lock).
	Attempts int
	Duration time.Duration
}

// BlobLink is a blob linked into a repository.
type BlobLink struct {
	Repo   string
	Digest oci.Digest
}

// gcAttemptsUnlocked is how many plans are tried without blocking pushes
// before GC plans while holding refMu exclusively.
const gcAttemptsUnlocked = 2

// maxIndexDepth bounds recursion through nested indexes.
const maxIndexDepth = 8

// GC deletes what no manifest needs. Mark: every manifest revision of every
// repository and, recursively through child manifests, everything it
// references (oci.ParseManifest(...).References()). Sweep: in each
// repository, blob links that no manifest of that repository references and
// that are older than grace; then blob files that no repository links or
// references and that are older than grace. A blob another repository still
// uses is never deleted. Blobs and links written or linked within grace are
// kept, which protects pushes in flight (a blob uploaded but not yet
// referenced by its manifest); grace 0 is only safe on an idle store.
//
// GC plans without blocking other operations, then takes the store's
// reference lock exclusively (refMu in this process, a flock on root/lock
// across processes) and applies the plan only if no reference was created
// meanwhile, by this process (the generation) or any other (the token in
// root/lock); otherwise it plans again (the last attempt plans under the
// lock). So a GC run by `airlock registry gc` next to a running server is
// as safe as one inside it. With dryRun it only reports and takes no lock.
func (s *Store) GC(ctx context.Context, dryRun bool, grace time.Duration) (GCReport, error) {
	s.gcRun.Lock()
	defer s.gcRun.Unlock()
	start := time.Now()
	if grace < 0 {
		grace = 0
	}
	for attempt := 1; ; attempt++ {
		final := attempt > gcAttemptsUnlocked
		fail := func(err error) (GCReport, error) {
			return GCReport{DryRun: dryRun, Attempts: attempt}, fmt.Errorf("gc: %w", err)
		}
		if final && !dryRun {
			if err := s.refLockExclusive(); err != nil {
				return fail(err)
			}
		}
		before, err := s.refState()
		var p gcPlan
		if err == nil {
			p, err = s.gcPlan(ctx, grace)
		}
		if err != nil {
			if final && !dryRun {
				s.refUnlockExclusive()
			}
			return fail(err)
		}
		p.report.DryRun = dryRun
		p.report.Attempts = attempt
		if dryRun {
			p.report.Duration = time.Since(start)
			return p.report, nil
		}
		if !final {
			if s.testHookPlanned != nil {
				s.testHookPlanned(attempt)
			}
			if err := s.refLockExclusive(); err != nil {
				return fail(err)
			}
			after, err := s.refState()
			if err != nil {
				s.refUnlockExclusive()
				return fail(err)
			}
			if after != before {
				s.refUnlockExclusive()
				continue
			}
		}
		err = s.gcApply(ctx, &p)
		s.refUnlockExclusive()
		p.report.Duration = time.Since(start)
		s.log.Info("garbage collection done", keyCount, len(p.report.Blobs), keyBytes, p.report.Bytes,
			keyLinks, p.report.Links, keyAttempts, attempt, keyUnparsable, len(p.report.Unparsable))
		if err != nil {
			return p.report, fmt.Errorf("gc: %w", err)
		}
		return p.report, nil
	}
}

type gcPlan struct {
	report GCReport
	sizes  map[oci.Digest]int64
}

// gcPlan marks and decides, touching nothing.
func (s *Store) gcPlan(ctx context.Context, grace time.Duration) (gcPlan, error) {
	cutoff := s.now().Add(-grace)
	p := gcPlan{sizes: map[oci.Digest]int64{}}
	used := map[oci.Digest]bool{} // referenced or linked by some repository, after the link sweep

	err := s.walkRepos(func(repo string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		marked := map[oci.Digest]bool{}
		sure := true
		counted := false
		err := listDigests(filepath.Join(s.repoDir(repo), dirManifests, dirRevisions), func(d oci.Digest, _ os.FileInfo) error {
			counted = true
			p.report.Manifests++
			marked[d] = true
			rev, err := s.readRevision(repo, d)
			if err != nil {
				s.log.Warn("gc: unreadable revision record", keyRepo, repo, keyDigest, d, keyErr, err)
				p.report.Unparsable = append(p.report.Unparsable, repo+"@"+string(d))
				sure = false
				return nil
			}
			if !s.markManifest(repo, d, rev.MediaType, marked, map[oci.Digest]bool{}, 0, &p.report) {
				sure = false
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("mark %s: %w", repo, err)
		}
		err = listDigests(filepath.Join(s.repoDir(repo), dirLayers), func(d oci.Digest, fi os.FileInfo) error {
			counted = true
			if marked[d] || !sure || !fi.ModTime().Before(cutoff) {
				used[d] = true
				return nil
			}
			p.report.RemovedLinks = append(p.report.RemovedLinks, BlobLink{Repo: repo, Digest: d})
			return nil
		})
		if err != nil {
			return fmt.Errorf("sweep links of %s: %w", repo, err)
		}
		for d := range marked {
			used[d] = true
		}
		if counted {
			p.report.Repositories++
		}
		return nil
	})
	if err != nil {
		return p, err
	}
	p.report.Links = len(p.report.RemovedLinks)

	for _, alg := range []oci.Algorithm{oci.SHA256, oci.SHA512} {
		algDir := filepath.Join(s.root, dirBlobs, string(alg))
		prefixes, err := os.ReadDir(algDir)
		if err != nil {
			return p, fmt.Errorf("list blobs: %w", err)
		}
		for _, pre := range prefixes {
			if err := ctx.Err(); err != nil {
				return p, err
			}
			if !pre.IsDir() || len(pre.Name()) != 2 {
				continue
			}
			entries, err := os.ReadDir(filepath.Join(algDir, pre.Name()))
			if err != nil {
				return p, fmt.Errorf("list blobs: %w", err)
			}
			for _, e := range entries {
				d, err := oci.ParseDigest(string(alg) + ":" + e.Name())
				if err != nil || !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), pre.Name()) {
					continue
				}
				fi, err := e.Info()
				if err != nil {
					if isNotExist(err) {
						continue
					}
					return p, fmt.Errorf("list blobs: %w", err)
				}
				switch {
				case used[d]:
					p.report.Kept++
				case !fi.ModTime().Before(cutoff):
					p.report.Kept++
					p.report.Protected++
				default:
					p.report.Blobs = append(p.report.Blobs, d)
					p.report.Bytes += fi.Size()
					p.sizes[d] = fi.Size()
				}
			}
		}
	}
	slices.Sort(p.report.Blobs)
	return p, nil
}

// markManifest marks everything manifest d references, recursing into child
// manifests. It reports false when some manifest could not be read or
// parsed, in which case the repository's links must all be kept.
func (s *Store) markManifest(repo string, d oci.Digest, mediaType string, marked, visited map[oci.Digest]bool, depth int, rep *GCReport) bool {
	if visited[d] {
		return true
	}
	visited[d] = true
	body, err := readSmall(s.blobPath(d), oci.MaxManifestSize)
	if err != nil {
		if isNotExist(err) && depth > 0 {
			return true // a child manifest never pushed: nothing to keep
		}
		s.log.Warn("gc: manifest body unreadable", keyRepo, repo, keyDigest, d, keyErr, err)
		rep.Unparsable = append(rep.Unparsable, repo+"@"+string(d))
		return false
	}
	m, err := oci.ParseManifest(mediaType, body)
	if err != nil {
		m, err = oci.ParseManifest("", body)
	}
	if err != nil {
		s.log.Warn("gc: manifest does not parse; keeping all blob links of its repository", keyRepo, repo, keyDigest, d, keyErr, err)
		rep.Unparsable = append(rep.Unparsable, repo+"@"+string(d))
		return false
	}
	ok := true
	for _, ref := range m.References() {
		marked[ref.Digest] = true
		if oci.IsManifestMediaType(ref.MediaType) && depth < maxIndexDepth {
			if !s.markManifest(repo, ref.Digest, ref.MediaType, marked, visited, depth+1, rep) {
				ok = false
			}
		}
	}
	return ok
}

// gcApply removes what the plan found and trims the report to what was
// actually removed. The caller holds refLockExclusive.
func (s *Store) gcApply(ctx context.Context, p *gcPlan) error {
	dirs := map[string]bool{}
	var errs []error
	links, blobs := p.report.RemovedLinks, p.report.Blobs
	p.report.RemovedLinks, p.report.Blobs, p.report.Bytes = nil, nil, 0
	defer func() { p.report.Links = len(p.report.RemovedLinks) }()
	for _, l := range links {
		if err := ctx.Err(); err != nil {
			return err
		}
		lp := s.linkPath(l.Repo, l.Digest)
		if err := os.Remove(lp); err != nil && !isNotExist(err) {
			errs = append(errs, err)
			continue
		}
		p.report.RemovedLinks = append(p.report.RemovedLinks, l)
		dirs[filepath.Dir(lp)] = true
	}
	for _, d := range blobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		bp := s.blobPath(d)
		if err := os.Remove(bp); err != nil && !isNotExist(err) {
			errs = append(errs, err)
			continue
		}
		p.report.Blobs = append(p.report.Blobs, d)
		p.report.Bytes += p.sizes[d]
		dirs[filepath.Dir(bp)] = true
	}
	for dir := range dirs {
		if err := syncDir(dir); err != nil && !isNotExist(err) {
			errs = append(errs, err)
		}
	}
	if err := s.pruneRepoDirs(); err != nil {
		errs = append(errs, fmt.Errorf("prune empty repository directories: %w", err))
	}
	return errors.Join(errs...)
}

// pruneRepoDirs removes empty directories under root/repos, deepest first,
// so deleted repositories leave nothing behind. The caller holds
// refLockExclusive (every creator of these directories holds it shared).
func (s *Store) pruneRepoDirs() error {
	var prune func(dir string) (bool, error)
	prune = func(dir string) (bool, error) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return false, err
		}
		empty := true
		for _, e := range entries {
			if !e.IsDir() {
				empty = false
				continue
			}
			gone, err := prune(filepath.Join(dir, e.Name()))
			if err != nil {
				return false, err
			}
			if !gone {
				empty = false
			}
		}
		if !empty || dir == s.reposDir() {
			return false, nil
		}
		if err := os.Remove(dir); err != nil {
			return false, nil // not empty after all: keep it
		}
		return true, nil
	}
	_, err := prune(s.reposDir())
	return err
}
