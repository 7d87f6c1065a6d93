package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/upstream"
)

func isUnknown(err error) bool {
	return errors.Is(err, storage.ErrManifestUnknown) || errors.Is(err, storage.ErrNameUnknown)
}

// GetManifest serves a manifest, fetching or revalidating it upstream for
// cache repositories.
func (s *Store) GetManifest(ctx context.Context, repo string, ref oci.Reference) (storage.ManifestRecord, error) {
	t, ok := s.match(repo)
	if !ok {
		return s.Local.GetManifest(ctx, repo, ref)
	}
	local, err := s.Local.GetManifest(ctx, repo, ref)
	switch {
	case err == nil && (ref.IsDigest() || s.isFresh(repo, ref.Tag)):
		s.m.hits.WithLabelValues("manifest").Inc()
		return local, nil
	case err != nil && !isUnknown(err):
		return local, err
	case ref.IsDigest():
		s.m.misses.WithLabelValues("manifest").Inc()
		return s.fetchByDigest(ctx, t, repo, ref.Digest)
	}
	var have *storage.ManifestRecord
	if err == nil {
		have = &local
	} else {
		s.m.misses.WithLabelValues("manifest").Inc()
	}
	return s.revalidate(ctx, t, repo, ref.Tag, have)
}

// StatManifest is GetManifest without the body where the cache can help it.
func (s *Store) StatManifest(ctx context.Context, repo string, ref oci.Reference) (oci.Descriptor, error) {
	if _, ok := s.match(repo); !ok {
		return s.Local.StatManifest(ctx, repo, ref)
	}
	if ref.IsDigest() || s.isFresh(repo, ref.Tag) {
		if d, err := s.Local.StatManifest(ctx, repo, ref); err == nil {
			s.m.hits.WithLabelValues("manifest").Inc()
			return d, nil
		} else if !isUnknown(err) {
			return d, err
		}
	}
	m, err := s.GetManifest(ctx, repo, ref)
	if err != nil {
		return oci.Descriptor{}, err
	}
	return oci.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: int64(len(m.Body))}, nil
}

func freshKey(repo, tag string) string { return repo + "\x00" + tag }

// isFresh reports whether tag was fetched or revalidated within tagTTL:
// by this process (memory), or by any replica sharing the storage (the
// tag object's time, which markFresh refreshes).
func (s *Store) isFresh(repo, tag string) bool {
	s.freshMu.Lock()
	at, ok := s.fresh[freshKey(repo, tag)]
	s.freshMu.Unlock()
	if ok && s.now().Sub(at) < s.tagTTL {
		return true
	}
	if s.blobs == nil {
		return false
	}
	at, err := s.blobs.TagTime(repo, tag)
	// The storage's clock may run a little ahead of this one.
	if age := s.now().Sub(at); err != nil || age >= s.tagTTL || age <= -s.tagTTL {
		return false
	}
	s.freshMu.Lock()
	s.fresh[freshKey(repo, tag)] = at
	s.freshMu.Unlock()
	return true
}

// markFresh records that tag was just fetched or revalidated, in memory
// and, when stored is false (a revalidation that wrote nothing), on the
// tag object for the other replicas.
func (s *Store) markFresh(repo, tag string, stored bool) {
	s.freshMu.Lock()
	s.fresh[freshKey(repo, tag)] = s.now()
	s.freshMu.Unlock()
	if !stored && s.blobs != nil {
		if err := s.blobs.TouchTag(repo, tag); err != nil {
			s.log.Warn("record tag revalidation time", "repo", repo, "tag", tag, "err", err)
		}
	}
}

// revalidate asks the upstream what tag points at now (HEAD), fetching the
// manifest only when it changed. With the upstream unreachable a cached
// copy (have) is served stale.
func (s *Store) revalidate(ctx context.Context, t target, repo, tag string, have *storage.ManifestRecord) (storage.ManifestRecord, error) {
	if have != nil && s.hostDown(t.host) {
		// The upstream failed moments ago: serve what we hold at once
		// rather than make every pull wait for it to fail again.
		s.m.stale.Inc()
		return *have, nil
	}
	defer s.trackManifest(repo, tag)()
	v, err, _ := s.flights.Do("tag\x00"+repo+"\x00"+tag, func() (any, error) {
		// Across replicas: one revalidation of a tag at a time; a waiter
		// serves what the holder stored once the shared tag time shows it
		// fresh.
		ref := oci.Reference{Tag: tag}
		release, ready := s.coordinateManifest(ctx, repo, ref, func() bool { return s.isFresh(repo, tag) })
		if ready != nil {
			return *ready, nil
		}
		defer release()
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		if have != nil {
			uctx = upstream.WithoutRetries(uctx) // we have a fallback: one try
		}
		what := fmt.Sprintf("%s:%s", t.repo, tag)
		desc, err := s.up.HeadManifest(uctx, t.host, t.repo, oci.Reference{Tag: tag})
		if err == nil && have != nil && desc.Digest == have.Digest {
			s.markUp(t.host)
			s.markFresh(repo, tag, false)
			return *have, nil
		}
		var body []byte
		if err == nil {
			ref := oci.Reference{Tag: tag}
			if desc.Digest != "" {
				ref = oci.Reference{Digest: desc.Digest}
			}
			desc, body, err = s.up.GetManifest(uctx, t.host, t.repo, ref)
		}
		if err != nil {
			if errors.Is(err, ErrUpstreamUnavailable) {
				s.markDown(t.host)
			}
			if have != nil && !errors.Is(err, ErrUpstreamNotFound) {
				s.m.stale.Inc()
				s.log.Warn("upstream unreachable: serving a cached tag that could not be revalidated",
					"repo", repo, "tag", tag, "digest", have.Digest, "host", t.host, "retry_after", downWindow.String(), "err", err)
				return *have, nil
			}
			if errors.Is(err, ErrUpstreamNotFound) {
				return nil, storage.NotFoundUpstream(oci.CodeManifestUnknown, what, t.host)
			}
			return nil, s.upstreamErr(t, what, err)
		}
		s.markUp(t.host)
		rec, err := s.storeManifest(ctx, t, repo, tag, "", desc.MediaType, body)
		if err != nil {
			return nil, err
		}
		s.markFresh(repo, tag, true)
		return rec, nil
	})
	if err != nil {
		return storage.ManifestRecord{}, err
	}
	return v.(storage.ManifestRecord), nil
}

// fetchByDigest fetches an immutable manifest once, however many ask.
func (s *Store) fetchByDigest(ctx context.Context, t target, repo string, d oci.Digest) (storage.ManifestRecord, error) {
	defer s.trackManifest(repo, string(d))()
	v, err, shared := s.flights.Do("digest\x00"+repo+"\x00"+string(d), func() (any, error) {
		release, ready := s.coordinateManifest(ctx, repo, oci.Reference{Digest: d}, nil)
		if ready != nil {
			return *ready, nil
		}
		defer release()
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		desc, body, err := s.up.GetManifest(uctx, t.host, t.repo, oci.Reference{Digest: d})
		if err != nil {
			if errors.Is(err, ErrUpstreamNotFound) {
				return nil, storage.NotFoundUpstream(oci.CodeManifestUnknown, t.repo+"@"+string(d), t.host)
			}
			return nil, s.upstreamErr(t, string(d), err)
		}
		return s.storeManifest(ctx, t, repo, "", d, desc.MediaType, body)
	})
	if shared {
		s.m.coalesced.WithLabelValues("manifest").Inc()
	}
	if err != nil {
		return storage.ManifestRecord{}, err
	}
	return v.(storage.ManifestRecord), nil
}

// coordinateManifest takes the cluster lease of a manifest fetch (see
// coordinate). ready is the stored record when another replica fetched it
// meanwhile: fresh is whether that replica's work is done for a tag (for a
// digest: nil, the manifest being stored is enough).
func (s *Store) coordinateManifest(ctx context.Context, repo string, ref oci.Reference, fresh func() bool) (release func(), ready *storage.ManifestRecord) {
	if s.cluster == nil {
		return func() {}, nil
	}
	var rec storage.ManifestRecord
	wctx, cancel := s.manifestWaitCtx(ctx)
	defer cancel()
	release, ok := s.coordinate(wctx, leaseWait{
		kind: "manifest",
		key:  manifestLeaseKey(repo, ref),
		ready: func() bool {
			if fresh != nil && !fresh() {
				return false
			}
			r, err := s.Local.GetManifest(wctx, repo, ref)
			if err != nil {
				return false
			}
			rec = r
			return true
		},
	})
	if ok {
		return nil, &rec
	}
	return release, nil
}

// storeManifest verifies and stores an upstream manifest. want is the
// digest asked for ("" for a tag: the canonical digest of the body).
func (s *Store) storeManifest(ctx context.Context, t target, repo, tag string, want oci.Digest, mediaType string, body []byte) (storage.ManifestRecord, error) {
	d := oci.Canonical.FromBytes(body)
	if want != "" {
		d = want.Algorithm().FromBytes(body)
		if d != want {
			s.m.verifyFailures.Inc()
			return storage.ManifestRecord{}, s.upstreamErr(t, string(want), fmt.Errorf("manifest bytes hash to %s", d))
		}
	}
	parsed, err := oci.ParseManifest(mediaType, body)
	if err != nil {
		return storage.ManifestRecord{}, s.upstreamErr(t, t.repo, err)
	}
	rec := storage.NewManifestRecord(d, parsed, body)
	if err := s.Local.PutManifest(context.WithoutCancel(ctx), repo, tag, rec); err != nil {
		return storage.ManifestRecord{}, fmt.Errorf("cache manifest %s in %s: %w", d, repo, err)
	}
	s.m.upstreamBytes.Add(float64(len(body)))
	return rec, nil
}

// downWindow is how long an upstream that failed a revalidation is not asked
// again for tags the cache holds (cold misses still try it: they have no
// other answer).
const downWindow = 15 * time.Second

func (s *Store) hostDown(host string) bool {
	s.freshMu.Lock()
	defer s.freshMu.Unlock()
	return s.now().Before(s.down[host])
}

func (s *Store) markDown(host string) {
	s.freshMu.Lock()
	s.down[host] = s.now().Add(downWindow)
	s.freshMu.Unlock()
}

func (s *Store) markUp(host string) {
	s.freshMu.Lock()
	delete(s.down, host)
	s.freshMu.Unlock()
}
