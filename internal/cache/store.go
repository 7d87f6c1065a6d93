package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/cluster"
	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/upstream"
)

// Local is the plain store the cache serves hits from and delegates
// non-cache repositories to (registry.LocalStore, wired by main): the
// storage contract itself, which the cache implements too.
type Local = storage.Store

// The cache is a Store like the one it wraps.
var _ storage.Store = (*Store)(nil)

// Upstream is what the cache needs from the upstream registry client
// (*upstream.Client through FromClient; a fake in unit tests). Errors wrap
// upstream's kinds: ErrNotFound when the upstream said the content does not
// exist, ErrUnavailable when it could not be reached or failed,
// ErrUnauthorized when it refused the credentials; anything else counts as
// a bad upstream answer. Calls must be bounded by the implementation: an
// upstream that does not answer within upstreamTimeout, or a blob body that
// stalls that long, fails with ErrUnavailable (the upstream client's Timeout
// and StallTimeout), since blob fills run without a deadline of their own.
type Upstream interface {
	HeadManifest(ctx context.Context, host, repo string, ref oci.Reference) (oci.Descriptor, error)
	GetManifest(ctx context.Context, host, repo string, ref oci.Reference) (oci.Descriptor, []byte, error)
	GetBlob(ctx context.Context, host, repo string, d oci.Digest) (io.ReadCloser, int64, error)
	Referrers(ctx context.Context, host, repo string, subject oci.Digest) ([]oci.Descriptor, error)
}

// The upstream failure kinds the cache tells apart.
var (
	ErrUpstreamNotFound    = upstream.ErrNotFound
	ErrUpstreamUnavailable = upstream.ErrUnavailable
)

// Deps are the cache's collaborators.
type Deps struct {
	Local    Local
	Blobs    *blobstore.Store
	Upstream Upstream
	Logger   *slog.Logger
	Registry prometheus.Registerer // nil: metrics not registered
	Now      func() time.Time
	// Cluster coordinates upstream fetches and the quota eviction with the
	// other replicas on the same storage (docs/cluster.md). nil: this
	// process is the only one; fetches are coalesced in-process only.
	Cluster *cluster.Cluster
}

// Store is the pull-through cache.
type Store struct {
	Local // non-cache repositories, and every method not defined below

	blobs   *blobstore.Store
	up      Upstream
	rules   *rules
	tagTTL  time.Duration
	timeout time.Duration
	quota   Size
	log     *slog.Logger
	m       *metrics
	now     func() time.Time

	cluster     *cluster.Cluster // nil: local coordination only
	leaseTTL    time.Duration    // of fill leases
	relayClient *http.Client     // streams fills from other replicas (relay.go)

	flights singleflight.Group // manifest fetches, key repo@ref

	fillsMu sync.Mutex
	fills   map[oci.Digest]*fill
	mfills  map[string]*manifestFill // manifest fetches in flight (Fills), key repo@ref

	freshMu sync.Mutex
	fresh   map[string]time.Time // repo:tag → revalidated at
	down    map[string]time.Time // upstream host → not asked before

	quotaKick chan struct{}
}

// New builds the cache. It does no I/O.
func New(cfg *Config, deps Deps) (*Store, error) {
	if deps.Local == nil || deps.Blobs == nil || deps.Upstream == nil {
		return nil, errors.New("cache: Local, Blobs and Upstream are required")
	}
	var problems []string
	rs := compileRules(cfg.CacheRules, cfg.credentialSetNames(), func(path, msg string) { problems = append(problems, path+": "+msg) })
	if len(problems) > 0 {
		return nil, fmt.Errorf("cache: invalid rules: %v", problems)
	}
	s := &Store{
		Local:       deps.Local,
		blobs:       deps.Blobs,
		up:          deps.Upstream,
		rules:       rs,
		tagTTL:      cfg.TagTTL,
		timeout:     cfg.UpstreamTimeout,
		quota:       cfg.Quota,
		log:         deps.Logger,
		m:           newMetrics(deps.Registry),
		now:         deps.Now,
		cluster:     deps.Cluster,
		leaseTTL:    DefaultFillLeaseTTL,
		relayClient: newRelayClient(),
		fills:       map[oci.Digest]*fill{},
		mfills:      map[string]*manifestFill{},
		fresh:       map[string]time.Time{},
		down:        map[string]time.Time{},

		quotaKick: make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.timeout <= 0 {
		s.timeout = DefaultUpstreamTimeout
	}
	return s, nil
}

// target is a repository under a cache rule.
type target struct {
	rule *rule
	host string // upstream host
	repo string // upstream repository
}

// match reports whether repo is a cache repository and where its upstream is.
func (s *Store) match(repo string) (target, bool) {
	r := s.rules.byTarget(repo)
	if r == nil {
		return target{}, false
	}
	return target{rule: r, host: r.host, repo: oci.NormalizeRepo(r.host, r.upstreamRepo(repo))}, true
}

// Resolve maps a mirror-style request (containerd's ?ns=HOST) to the local
// repository name: a path under a rule's target is used as is; otherwise
// HOST/path must match a rule's source, and the name becomes that rule's
// target name. Anything else is NAME_UNKNOWN: airlock is never an open
// proxy to arbitrary hosts.
func (s *Store) Resolve(name, ns string) (string, error) {
	if ns == "" || s.rules.byTarget(name) != nil {
		return name, nil
	}
	path := oci.NormalizeRepo(ns, name)
	if r := s.rules.bySource(ns, path); r != nil {
		return r.localRepo(path), nil
	}
	return "", oci.NewError(oci.CodeNameUnknown,
		fmt.Sprintf("no cache rule covers %s/%s; add a cacheRules entry whose sourceRepo matches it", ns, path)).
		WithStatus(http.StatusNotFound)
}

func (s *Store) denyWrite(t target, repo string) error {
	return oci.NewError(oci.CodeDenied,
		fmt.Sprintf("repository %s is a read-only cache of %s/%s (cache rule %q); push to a repository outside the rule's target", repo, t.host, t.repo, t.rule.name))
}

// unavailable is the error a client sees for a cold miss with the upstream down.
func unavailable(t target, what string) error {
	return oci.NewError(oci.CodeUnavailable,
		fmt.Sprintf("upstream %s is unreachable and %s is not cached; retry when it is back, or warm the cache beforehand", t.host, what))
}

// upstreamErr turns an upstream failure into a client error.
func (s *Store) upstreamErr(t target, what string, err error) error {
	switch {
	case errors.Is(err, ErrUpstreamNotFound):
		// Manifests map this to MANIFEST_UNKNOWN before; what reaches
		// here is a blob.
		return storage.NotFoundUpstream(oci.CodeBlobUnknown, what, t.host+"/"+t.repo)
	case errors.Is(err, ErrUpstreamUnavailable), errors.Is(err, context.DeadlineExceeded):
		return unavailable(t, what)
	case errors.Is(err, upstream.ErrUnauthorized):
		s.log.Warn("upstream refused access", "host", t.host, "repo", t.repo, "rule", t.rule.name, "err", err)
		return oci.NewError(oci.CodeUnavailable, fmt.Sprintf("upstream %s refused access to %s; check the credentialSet of cache rule %q", t.host, t.repo, t.rule.name))
	}
	s.log.Warn("bad upstream answer", "host", t.host, "repo", t.repo, "what", what, "err", err)
	return oci.NewError(oci.CodeUnavailable, fmt.Sprintf("upstream %s gave an invalid answer for %s; nothing was cached", t.host, what))
}

// Writes into a cache namespace are refused; deletes evict.

func (s *Store) PutManifest(ctx context.Context, repo, tag string, m storage.ManifestRecord) error {
	if t, ok := s.match(repo); ok {
		return s.denyWrite(t, repo)
	}
	return s.Local.PutManifest(ctx, repo, tag, m)
}

func (s *Store) PutBlob(ctx context.Context, repo string, d oci.Digest, r io.Reader) (int64, error) {
	if t, ok := s.match(repo); ok {
		return 0, s.denyWrite(t, repo)
	}
	return s.Local.PutBlob(ctx, repo, d, r)
}

func (s *Store) MountBlob(ctx context.Context, repo, from string, d oci.Digest) (bool, error) {
	if t, ok := s.match(repo); ok {
		return false, s.denyWrite(t, repo)
	}
	return s.Local.MountBlob(ctx, repo, from, d)
}

func (s *Store) NewUpload(ctx context.Context, repo string) (storage.Upload, error) {
	if t, ok := s.match(repo); ok {
		return nil, s.denyWrite(t, repo)
	}
	return s.Local.NewUpload(ctx, repo)
}

func (s *Store) GetUpload(ctx context.Context, repo, id string) (storage.Upload, error) {
	if t, ok := s.match(repo); ok {
		return nil, s.denyWrite(t, repo)
	}
	return s.Local.GetUpload(ctx, repo, id)
}

// Referrers of a cached subject: the upstream's list when it answers, plus
// what is cached locally; the local list alone when the upstream is down.
func (s *Store) Referrers(ctx context.Context, repo string, subject oci.Digest) ([]oci.Descriptor, error) {
	local, err := s.Local.Referrers(ctx, repo, subject)
	t, ok := s.match(repo)
	if !ok || err != nil {
		return local, err
	}
	uctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	remote, uerr := s.up.Referrers(uctx, t.host, t.repo, subject)
	if uerr != nil {
		if !errors.Is(uerr, ErrUpstreamNotFound) {
			s.log.Warn("referrers from upstream failed; serving the cached list", "host", t.host, "repo", t.repo, "err", uerr)
		}
		return local, nil
	}
	seen := map[oci.Digest]bool{}
	out := make([]oci.Descriptor, 0, len(local)+len(remote))
	for _, d := range append(local, remote...) {
		if !seen[d.Digest] {
			seen[d.Digest] = true
			out = append(out, d)
		}
	}
	return out, nil
}
