package cache

import (
	"sort"
	"time"
)

// FillInfo is one upstream fetch in progress, for the console.
type FillInfo struct {
	Kind       string `json:"kind"` // blob or manifest
	Repository string `json:"repository"`
	// Digest is the blob's digest, or the manifest's reference (tag or
	// digest).
	Digest    string    `json:"digest"`
	Bytes     int64     `json:"bytes"` // written so far (blobs; 0 for manifests)
	Size      int64     `json:"size"`  // -1: not known yet
	StartedAt time.Time `json:"startedAt"`
	// Waiters are the requests reading the blob as it arrives, or waiting
	// for the manifest.
	Waiters int `json:"waiters"`
}

// manifestFill is a manifest fetch (or tag revalidation) in flight.
type manifestFill struct {
	repo, ref string
	began     time.Time
	waiters   int
}

// trackManifest records a request waiting on the manifest fetch of
// repo@ref until the returned func is called.
func (s *Store) trackManifest(repo, ref string) (done func()) {
	key := repo + "@" + ref
	s.fillsMu.Lock()
	m := s.mfills[key]
	if m == nil {
		m = &manifestFill{repo: repo, ref: ref, began: s.now()}
		s.mfills[key] = m
	}
	m.waiters++
	s.fillsMu.Unlock()
	return func() {
		s.fillsMu.Lock()
		if m.waiters--; m.waiters == 0 && s.mfills[key] == m {
			delete(s.mfills, key)
		}
		s.fillsMu.Unlock()
	}
}

// Fills lists the blob fills and manifest fetches in progress, oldest
// first: bytes so far, size when known, start time and waiting requests.
func (s *Store) Fills() []FillInfo {
	s.fillsMu.Lock()
	fills := make([]*fill, 0, len(s.fills))
	for _, f := range s.fills {
		fills = append(fills, f)
	}
	out := make([]FillInfo, 0, len(s.fills)+len(s.mfills))
	for _, m := range s.mfills {
		out = append(out, FillInfo{Kind: "manifest", Repository: m.repo, Digest: m.ref, Size: -1, StartedAt: m.began, Waiters: m.waiters})
	}
	s.fillsMu.Unlock()
	for _, f := range fills {
		f.mu.Lock()
		if f.state == filling {
			out = append(out, FillInfo{Kind: "blob", Repository: f.repo, Digest: string(f.d), Bytes: f.written, Size: f.size, StartedAt: f.began, Waiters: f.readers})
		}
		f.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.Before(out[j].StartedAt)
		}
		return out[i].Digest < out[j].Digest
	})
	return out
}
