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

// gcPlan marks and decides, touching nothing. It lists repos/ once and
// blobs/ once.
func (s *Store) gcPlan(ctx context.Context, grace time.Duration) (gcPlan, error) {
	cutoff := s.now().Add(-grace)
	p := gcPlan{sizes: map[oci.Digest]int64{}}
	used := map[oci.Digest]bool{} // referenced or linked by some repository, after the link sweep

	type repoObjects struct {
		revisions []oci.Digest
		links     []ObjectInfo
	}
	repos := map[string]*repoObjects{}
	err := s.list(dirRepos, func(o ObjectInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		repo, ok := s.repoOf(o.Name)
		if !ok {
			return nil
		}
		r := repos[repo]
		if r == nil {
			r = &repoObjects{}
			repos[repo] = r
		}
		if d, ok := digestUnder(revisionsName(repo), o.Name); ok {
			r.revisions = append(r.revisions, d)
		} else if _, ok := digestUnder(repoName(repo)+"/"+dirLayers, o.Name); ok {
			r.links = append(r.links, o)
		}
		return nil
	})
	if err != nil {
		return p, fmt.Errorf("list repositories: %w", err)
	}
	names := make([]string, 0, len(repos))
	for name := range repos {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, repo := range names {
		if err := ctx.Err(); err != nil {
			return p, err
		}
		r := repos[repo]
		marked := map[oci.Digest]bool{}
		sure := true
		for _, d := range r.revisions {
			p.report.Manifests++
			marked[d] = true
			rev, err := s.readRevision(repo, d)
			if err != nil {
				s.log.Warn("gc: unreadable revision record", keyRepo, repo, keyDigest, d, keyErr, err)
				p.report.Unparsable = append(p.report.Unparsable, repo+"@"+string(d))
				sure = false
				continue
			}
			if !s.markManifest(repo, d, rev, marked, map[oci.Digest]bool{}, 0, &p.report) {
				sure = false
			}
		}
		linksPrefix := repoName(repo) + "/" + dirLayers
		for _, o := range r.links {
			d, _ := digestUnder(linksPrefix, o.Name)
			if marked[d] || !sure || !o.ModTime.Before(cutoff) {
				used[d] = true
				continue
			}
			p.report.RemovedLinks = append(p.report.RemovedLinks, BlobLink{Repo: repo, Digest: d})
		}
		for d := range marked {
			used[d] = true
		}
		if len(r.revisions)+len(r.links) > 0 {
			p.report.Repositories++
		}
	}
	p.report.Links = len(p.report.RemovedLinks)

	err = s.list(dirBlobs, func(o ObjectInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, ok := parseBlobName(o.Name)
		if !ok {
			return nil
		}
		switch {
		case used[d]:
			p.report.Kept++
		case !o.ModTime.Before(cutoff):
			p.report.Kept++
			p.report.Protected++
		default:
			p.report.Blobs = append(p.report.Blobs, d)
			p.report.Bytes += o.Size
			p.sizes[d] = o.Size
		}
		return nil
	})
	if err != nil {
		return p, fmt.Errorf("list blobs: %w", err)
	}
	slices.Sort(p.report.Blobs)
	return p, nil
}

// parseBlobName is the inverse of blobName.
func parseBlobName(name string) (oci.Digest, bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != dirBlobs || len(parts[2]) != 2 || !strings.HasPrefix(parts[3], parts[2]) {
		return "", false
	}
	d, err := oci.ParseDigest(parts[1] + ":" + parts[3])
	return d, err == nil
}

// markManifest marks everything manifest d references, recursing into child
// manifests. It reports false when some manifest could not be read or
// parsed, in which case the repository's links must all be kept.
func (s *Store) markManifest(repo string, d oci.Digest, rev revisionFile, marked, visited map[oci.Digest]bool, depth int, rep *GCReport) bool {
	if visited[d] {
		return true
	}
	visited[d] = true
	mediaType := rev.MediaType
	body, err := rev.Body, error(nil)
	if body == nil {
		body, err = s.readSmall(blobName(d), oci.MaxManifestSize)
	}
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
			if !s.markManifest(repo, ref.Digest, revisionFile{MediaType: ref.MediaType}, marked, visited, depth+1, rep) {
				ok = false
			}
		}
	}
	return ok
}

// gcApply removes what the plan found and trims the report to what was
// actually removed. The caller holds refLockExclusive.
func (s *Store) gcApply(ctx context.Context, p *gcPlan) error {
	var errs []error
	links, blobs := p.report.RemovedLinks, p.report.Blobs
	p.report.RemovedLinks, p.report.Blobs, p.report.Bytes = nil, nil, 0
	defer func() { p.report.Links = len(p.report.RemovedLinks) }()
	for _, l := range links {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.forgetLink(l.Repo, l.Digest)
		if err := s.deleteObj(linkName(l.Repo, l.Digest)); err != nil && !isNotExist(err) {
			errs = append(errs, err)
			continue
		}
		p.report.RemovedLinks = append(p.report.RemovedLinks, l)
	}
	for _, d := range blobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.deleteObj(blobName(d)); err != nil && !isNotExist(err) {
			errs = append(errs, err)
			continue
		}
		s.sizes.Delete(d)
		if s.lc != nil {
			s.lc.remove(d)
		}
		p.report.Blobs = append(p.report.Blobs, d)
		p.report.Bytes += p.sizes[d]
	}
	if len(p.report.RemovedLinks) > 0 {
		s.bumpGen() // repositories may be gone from the catalog
	}
	if s.fsd != nil {
		if err := s.pruneRepoDirs(); err != nil {
			errs = append(errs, fmt.Errorf("prune empty repository directories: %w", err))
		}
	}
	if err := s.reclaimStaged(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// reclaimStaged asks the storage to drop writes a crash left unfinished
// (S3: multipart uploads older than the upload TTL). Azure drops
// uncommitted blocks by itself after 7 days; the file system's temp files
// go at Open and PurgeUploads.
func (s *Store) reclaimStaged(ctx context.Context) error {
	type stagedReclaimer interface {
		AbortStaleUploads(ctx context.Context, olderThan time.Time) (int, error)
	}
	r, ok := s.drv.(stagedReclaimer)
	if !ok {
		return nil
	}
	n, err := r.AbortStaleUploads(ctx, s.now().Add(-s.uploadTTL))
	if n > 0 {
		s.log.Info("gc: aborted unfinished multipart uploads", keyCount, n)
	}
	if err != nil {
		return fmt.Errorf("abort unfinished uploads: %w", err)
	}
	return nil
}

// pruneRepoDirs removes empty directories under root/repos, deepest first,
// so deleted repositories leave nothing behind (file system only: object
// storage has no directories). The caller holds refLockExclusive (every
// creator of these directories holds it shared).
func (s *Store) pruneRepoDirs() error {
	reposDir := filepath.Join(s.root, dirRepos)
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
		if !empty || dir == reposDir {
			return false, nil
		}
		if err := os.Remove(dir); err != nil {
			return false, nil // not empty after all: keep it
		}
		return true, nil
	}
	_, err := prune(reposDir)
	return err
}
