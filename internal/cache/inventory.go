package cache

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/airlockdev/airlock/internal/blobstore"
)

// RepoInventory describes one cached repository, for `airlock cache ls`.
type RepoInventory struct {
	Repository string         `json:"repository"`
	Rule       string         `json:"rule"`
	Upstream   string         `json:"upstream"`
	Tags       []TagInventory `json:"tags"`
	Blobs      int            `json:"blobs"`
	Bytes      int64          `json:"bytes"`
	LastUsed   time.Time      `json:"lastUsed"`
}

// TagInventory is one cached tag.
type TagInventory struct {
	Tag     string    `json:"tag"`
	Digest  string    `json:"digest"`
	Fetched time.Time `json:"fetched"`
}

// Inventory lists every repository under a cache rule with its tags,
// blob count, bytes and last use.
func (s *Store) Inventory() ([]RepoInventory, error) {
	repos, err := s.blobs.Repositories()
	if err != nil {
		return nil, err
	}
	out := []RepoInventory{}
	for _, repo := range repos {
		t, ok := s.match(repo)
		if !ok {
			continue
		}
		inv := RepoInventory{Repository: repo, Rule: t.rule.name, Upstream: t.host + "/" + t.repo, Tags: []TagInventory{}}
		tags, err := s.blobs.TagInfos(repo)
		if err != nil {
			return nil, err
		}
		for _, ti := range tags {
			inv.Tags = append(inv.Tags, TagInventory{Tag: ti.Tag, Digest: string(ti.Digest), Fetched: ti.Updated})
		}
		s.blobs.Links(repo, func(li blobstore.LinkInfo) error {
			inv.Blobs++
			inv.Bytes += li.Size
			if li.LastUsed.After(inv.LastUsed) {
				inv.LastUsed = li.LastUsed
			}
			return nil
		})
		out = append(out, inv)
	}
	return out, nil
}

// InventoryHandler serves Inventory as JSON (mounted on the admin listener
// at /cache).
func (s *Store) InventoryHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv, err := s.Inventory()
		if err != nil {
			s.log.Error("cache inventory", "err", err)
			http.Error(w, "cache inventory failed; see the airlock log", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(inv)
	})
}
