package blobstore

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

func TestEvictKeepsBlobsOtherRepositoriesHold(t *testing.T) {
	now := time.Unix(1000, 0)
	s, err := Open(t.TempDir(), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	shared := []byte("shared layer")
	only := []byte("cache-only layer")
	ds := oci.SHA256.FromBytes(shared)
	do := oci.SHA256.FromBytes(only)
	for _, b := range [][]byte{shared, only} {
		if _, err := s.Put(oci.SHA256.FromBytes(b), bytes.NewReader(b), -1); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []struct {
		repo string
		d    oci.Digest
	}{{"cache/a", ds}, {"cache/a", do}, {"team/app", ds}} {
		if err := s.LinkBlob(l.repo, l.d); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Minute)
	if err := s.TouchLink("cache/a", ds); err != nil {
		t.Fatal(err)
	}
	var links []LinkInfo
	s.Links("cache/a", func(li LinkInfo) error { links = append(links, li); return nil })
	if len(links) != 2 {
		t.Fatalf("Links = %d, want 2", len(links))
	}
	for _, li := range links {
		if li.Digest == ds && !li.LastUsed.Equal(now) {
			t.Errorf("TouchLink did not refresh LastUsed: %v, want %v", li.LastUsed, now)
		}
	}
	if freed, err := s.Evict("cache/a", ds); err != nil || freed != 0 {
		t.Errorf("Evict(shared) = %d, %v; want 0 freed (team/app holds it)", freed, err)
	}
	if _, err := s.Stat(ds); err != nil {
		t.Errorf("shared blob gone after evicting it from the cache repo: %v", err)
	}
	if freed, err := s.Evict("cache/a", do); err != nil || freed != int64(len(only)) {
		t.Errorf("Evict(cache-only) = %d, %v; want %d", freed, err, len(only))
	}
	if _, err := s.Stat(do); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("evicted blob still stored: %v", err)
	}
}
