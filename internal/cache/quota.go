package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
)

// QuotaInterval is how often the quota is checked besides after each fill.
const QuotaInterval = time.Minute

// quotaLowWater: eviction stops at 90% of the quota, so a cache at its
// limit does not evict on every fill.
const quotaLowWater = 0.9

// Run enforces the quota until ctx ends. Without a quota it returns at once.
// With a cluster the periodic check is the singleton job "cache-quota"
// (one replica per interval), and every run — periodic or kicked after a
// fill — holds the cluster-wide run lease, so one replica at a time evicts.
func (s *Store) Run(ctx context.Context) {
	if s.quota <= 0 {
		return
	}
	if s.cluster != nil {
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.cluster.RunSingleton(ctx, quotaJob, QuotaInterval, func(ctx context.Context) error {
				s.runQuota(ctx)
				return nil
			})
		}()
		defer func() { <-done }()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.quotaKick:
				s.runQuota(ctx)
			}
		}
	}
	t := time.NewTicker(QuotaInterval)
	defer t.Stop()
	for {
		s.enforceQuota(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.quotaKick:
		}
	}
}

// kickQuota asks Run for a check soon (after a fill added bytes).
func (s *Store) kickQuota() {
	if s.quota <= 0 {
		return
	}
	select {
	case s.quotaKick <- struct{}{}:
	default:
	}
}

// enforceQuota evicts the least recently used cached blobs until cached
// content is under the low-water mark. Only repositories under a cache rule
// count; pushed content is never evicted.
func (s *Store) enforceQuota(ctx context.Context) {
	repos, err := s.blobs.Repositories()
	if err != nil {
		s.log.Warn("quota: listing repositories", "err", err)
		return
	}
	var links []blobstore.LinkInfo
	sizes := map[oci.Digest]int64{}
	for _, repo := range repos {
		if _, ok := s.match(repo); !ok {
			continue
		}
		s.blobs.Links(repo, func(li blobstore.LinkInfo) error {
			links = append(links, li)
			sizes[li.Digest] = li.Size
			return nil
		})
	}
	var total int64
	for _, n := range sizes {
		total += n
	}
	s.m.cachedBytes.Set(float64(total))
	if total <= int64(s.quota) {
		return
	}
	slices.SortFunc(links, func(a, b blobstore.LinkInfo) int { return a.LastUsed.Compare(b.LastUsed) })
	low := int64(float64(s.quota) * quotaLowWater)
	var freed int64
	var n int
	for _, li := range links {
		if total-freed <= low || ctx.Err() != nil {
			break
		}
		b, err := s.blobs.Evict(li.Repo, li.Digest)
		if err != nil {
			s.log.Warn("quota: evicting", "repo", li.Repo, "digest", li.Digest, "err", err)
			continue
		}
		freed += b
		if b > 0 {
			n++
		}
	}
	s.m.evictedBytes.Add(float64(freed))
	s.m.cachedBytes.Set(float64(total - freed))
	s.log.Info("quota: evicted least recently used cached blobs", "blobs", n, "bytes", freed, "cached_bytes", total-freed, "quota", int64(s.quota))
}

// storageErr is a local storage failure as the client sees it: nothing
// about paths, but whether the disk is full.
func (s *Store) storageErr(err error) error {
	s.log.Error("cache storage failed; nothing was cached", "err", err)
	s.kickQuota()
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return oci.NewError(oci.CodeUnavailable, "the cache's disk is full; the blob was not cached. Free space or lower registry.quota, then retry")
	}
	return oci.NewError(oci.CodeUnavailable, fmt.Sprintf("the cache could not store the content (%s); nothing was cached, retry", "storage error"))
}
