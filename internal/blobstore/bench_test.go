package blobstore

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/airlockdev/airlock/internal/oci"
)

// BenchmarkPut64MiB measures a full Put (hash, write, fsync, rename) of a
// 64 MiB blob that is not yet stored.
func BenchmarkPut64MiB(b *testing.B) {
	s := newStore(b)
	data := randBytes(64, 64<<20)
	d := oci.SHA256.FromBytes(data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Put(d, bytes.NewReader(data), -1); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.Remove(s.blobPath(d)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkGetManifestByTag resolves one of 1000 tags and reads the body.
func BenchmarkGetManifestByTag(b *testing.B) {
	s := newStore(b)
	img := pushImage(b, s, "bench/app", "", []byte("{}"), []byte("layer"))
	rec := ManifestRecord{Digest: img.manifest, MediaType: oci.MediaTypeImageManifest, Body: img.body}
	const tags = 1000
	for i := range tags {
		if err := s.PutManifest("bench/app", rec, fmt.Sprintf("v%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := s.GetManifest("bench/app", fmt.Sprintf("v%d", i%tags)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
