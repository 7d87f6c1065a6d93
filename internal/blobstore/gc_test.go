package blobstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/airlockdev/airlock/internal/oci"
)

// gcScene is a store with two repositories sharing a layer, plus garbage.
type gcScene struct {
	s   *Store
	clk *fakeClock
	a   image // in repo a: config ca, layers shared + la
	b   image // in repo b: config cb, layer shared
	// garbage once a's manifest is deleted and the clock moved past grace
	orphanBlob oci.Digest // Put, never linked
	orphanLink oci.Digest // linked into a, referenced by nothing
	shared     oci.Digest
}

func newGCScene(t *testing.T) *gcScene {
	t.Helper()
	clk := newFakeClock()
	s := openStore(t, filepath.Join(t.TempDir(), "root"), Options{Now: clk.Now})
	sc := &gcScene{s: s, clk: clk}
	shared := randBytes(100, 5000)
	sc.a = pushImage(t, s, "a", "v1", []byte(`{"c":"a"}`), shared, randBytes(101, 3000))
	sc.b = pushImage(t, s, "team/b", "v1", []byte(`{"c":"b"}`), shared)
	sc.shared = sc.a.layers[0]
	sc.orphanBlob = putBlob(t, s, "", oci.SHA256, []byte("orphan"))
	sc.orphanLink = putBlob(t, s, "a", oci.SHA512, []byte("linked, unreferenced"))
	return sc
}

func TestGCKeepsWhatAnotherRepositoryUses(t *testing.T) {
	sc := newGCScene(t)
	s := sc.s
	if err := s.DeleteManifest("a", sc.a.manifest); err != nil {
		t.Fatal(err)
	}
	sc.clk.Advance(2 * time.Hour)
	rep, err := s.GC(context.Background(), false, time.Hour)
	if err != nil {
		t.Fatalf("GC = %v", err)
	}
	wantGone := []oci.Digest{sc.a.manifest, sc.a.config, sc.a.layers[1], sc.orphanBlob, sc.orphanLink}
	slices.Sort(wantGone)
	if diff := cmp.Diff(wantGone, rep.Blobs); diff != "" {
		t.Errorf("GC report blobs (-want +got):\n%s", diff)
	}
	if rep.Links != 4 { // a: config, shared, la, orphanLink
		t.Errorf("GC report links = %d (%v), want 4", rep.Links, rep.RemovedLinks)
	}
	for _, d := range wantGone {
		if _, err := s.Stat(d); !errors.Is(err, ErrBlobUnknown) {
			t.Errorf("Stat(%s) after GC = %v, want ErrBlobUnknown", d, err)
		}
	}
	// Repository b is intact, including the layer it shares with a.
	m, err := s.GetManifest("team/b", "v1")
	if err != nil {
		t.Fatalf("GetManifest(team/b:v1) after GC = %v", err)
	}
	if m.Digest != sc.b.manifest {
		t.Errorf("team/b:v1 = %s, want %s", m.Digest, sc.b.manifest)
	}
	for _, d := range append([]oci.Digest{sc.b.config}, sc.b.layers...) {
		if _, err := s.BlobLinked("team/b", d); err != nil {
			t.Errorf("BlobLinked(team/b, %s) after GC = %v", d, err)
		}
	}
	if _, err := s.BlobLinked("a", sc.shared); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("BlobLinked(a, shared) after GC = %v, want link removed", err)
	}
	// a holds nothing any more: gone from the list and from disk.
	if repos, _ := s.Repositories(); !slices.Equal(repos, []string{"team/b"}) {
		t.Errorf("Repositories after GC = %v, want [team/b]", repos)
	}
	if _, err := os.Stat(s.repoDir("a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("repos/a after GC: %v, want removed", err)
	}
	// A second run finds nothing.
	rep, err = s.GC(context.Background(), false, time.Hour)
	if err != nil || len(rep.Blobs) != 0 || rep.Links != 0 {
		t.Errorf("second GC = %d blobs, %d links, %v; want nothing", len(rep.Blobs), rep.Links, err)
	}
}

func TestGCDryRunTouchesNothing(t *testing.T) {
	sc := newGCScene(t)
	s := sc.s
	if err := s.DeleteManifest("a", sc.a.manifest); err != nil {
		t.Fatal(err)
	}
	sc.clk.Advance(2 * time.Hour)
	before := treeSnapshot(t, s.root)
	dry, err := s.GC(context.Background(), true, time.Hour)
	if err != nil {
		t.Fatalf("GC(dry run) = %v", err)
	}
	if diff := cmp.Diff(before, treeSnapshot(t, s.root)); diff != "" {
		t.Fatalf("dry run changed the store (-before +after):\n%s", diff)
	}
	if !dry.DryRun || len(dry.Blobs) != 5 || dry.Links != 4 {
		t.Fatalf("dry run report = %d blobs, %d links, DryRun %v; want 5, 4, true", len(dry.Blobs), dry.Links, dry.DryRun)
	}
	real, err := s.GC(context.Background(), false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dry.Blobs, real.Blobs); diff != "" {
		t.Errorf("dry run blobs differ from real run (-dry +real):\n%s", diff)
	}
	if diff := cmp.Diff(dry.RemovedLinks, real.RemovedLinks); diff != "" {
		t.Errorf("dry run links differ from real run (-dry +real):\n%s", diff)
	}
	if dry.Bytes != real.Bytes || dry.Bytes == 0 {
		t.Errorf("bytes: dry %d, real %d; want equal and > 0", dry.Bytes, real.Bytes)
	}
}

func TestGCGraceProtectsFreshContent(t *testing.T) {
	sc := newGCScene(t)
	s := sc.s
	sc.clk.Advance(30 * time.Minute)
	// Pushed 30 min after the rest: a blob not yet linked, and a link not
	// yet referenced by a manifest (a push in flight).
	fresh := putBlob(t, s, "", oci.SHA256, []byte("fresh blob"))
	freshLinked := putBlob(t, s, "a", oci.SHA256, []byte("fresh link"))
	// Re-pushing an old orphan refreshes it too (the push that will link it).
	if _, err := s.Put(sc.orphanBlob, bytes.NewReader([]byte("orphan")), -1); err != nil {
		t.Fatal(err)
	}
	sc.clk.Advance(45 * time.Minute) // the first pushes are 75 min old, the fresh ones 45 min

	rep, err := s.GC(context.Background(), false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Blobs, []oci.Digest{sc.orphanLink}) {
		t.Errorf("GC with grace = %v, want only [%s]", rep.Blobs, sc.orphanLink)
	}
	for _, d := range []oci.Digest{fresh, freshLinked, sc.orphanBlob} {
		if _, err := s.Stat(d); err != nil {
			t.Errorf("Stat(%s) after GC = %v, want protected by grace", d, err)
		}
	}
	if _, err := s.BlobLinked("a", freshLinked); err != nil {
		t.Errorf("fresh link removed: %v", err)
	}
	if rep.Protected != 2 { // fresh and orphanBlob; freshLinked is kept by its fresh link
		t.Errorf("report Protected = %d, want 2", rep.Protected)
	}

	sc.clk.Advance(time.Hour)
	rep, err = s.GC(context.Background(), false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := []oci.Digest{fresh, freshLinked, sc.orphanBlob}
	slices.Sort(want)
	if !slices.Equal(rep.Blobs, want) {
		t.Errorf("GC after grace = %v, want %v", rep.Blobs, want)
	}
}

// TestGCFollowsIndexes: an index keeps its child manifests and their blobs,
// even a child that is only stored as a blob (no revision of its own).
func TestGCFollowsIndexes(t *testing.T) {
	clk := newFakeClock()
	s := openStore(t, filepath.Join(t.TempDir(), "root"), Options{Now: clk.Now})
	cfg := putBlob(t, s, "multi", oci.SHA256, []byte(`{"os":"linux"}`))
	layer := putBlob(t, s, "multi", oci.SHA512, randBytes(5, 777))
	child := imageManifest(t, desc("application/vnd.oci.image.config.v1+json", cfg, 14),
		[]oci.Descriptor{desc("application/vnd.oci.image.layer.v1.tar", layer, 777)}, nil)
	childD := putBlob(t, s, "multi", oci.SHA256, child)
	index, err := json.Marshal(oci.Index{SchemaVersion: 2, MediaType: oci.MediaTypeImageIndex,
		Manifests: []oci.Descriptor{desc(oci.MediaTypeImageManifest, childD, len(child))}})
	if err != nil {
		t.Fatal(err)
	}
	indexD := oci.SHA256.FromBytes(index)
	if err := s.PutManifest("multi", ManifestRecord{Digest: indexD, MediaType: oci.MediaTypeImageIndex, Body: index}, "latest"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(48 * time.Hour)
	rep, err := s.GC(context.Background(), false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Blobs) != 0 || rep.Links != 0 {
		t.Fatalf("GC removed %v and %d links, want nothing", rep.Blobs, rep.Links)
	}
	for _, d := range []oci.Digest{cfg, layer, childD, indexD} {
		if _, err := s.BlobLinked("multi", d); err != nil {
			t.Errorf("BlobLinked(%s) after GC = %v", d, err)
		}
	}
}

// TestGCUnparsableManifestKeepsLinks: when a manifest of a repository cannot
// be parsed, GC cannot know what it references, so it keeps every link there.
func TestGCUnparsableManifestKeepsLinks(t *testing.T) {
	clk := newFakeClock()
	s := openStore(t, filepath.Join(t.TempDir(), "root"), Options{Now: clk.Now})
	layer := putBlob(t, s, "odd", oci.SHA256, []byte("layer"))
	body := []byte(`{"not":"a manifest"}`)
	d := oci.SHA256.FromBytes(body)
	if err := s.PutManifest("odd", ManifestRecord{Digest: d, MediaType: oci.MediaTypeImageManifest, Body: body}, "v1"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(48 * time.Hour)
	rep, err := s.GC(context.Background(), false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unparsable) != 1 || len(rep.Blobs) != 0 || rep.Links != 0 {
		t.Fatalf("GC = unparsable %v, blobs %v, links %d; want 1 unparsable, nothing removed", rep.Unparsable, rep.Blobs, rep.Links)
	}
	if _, err := s.BlobLinked("odd", layer); err != nil {
		t.Fatalf("BlobLinked after GC = %v", err)
	}
}

// TestGCDuringPushes runs GC over and over while images are pushed whose
// layers are old orphan blobs (GC's candidates): a push re-puts and links
// them while GC may be deleting them. Every pushed image must be complete
// afterwards (run with -race).
func TestGCDuringPushes(t *testing.T) {
	clk := newFakeClock()
	s := openStore(t, filepath.Join(t.TempDir(), "root"), Options{Now: clk.Now})
	const orphans = 40
	layer := func(i int) []byte { return randBytes(uint64(1000+i), 512) }
	for i := range orphans {
		putBlob(t, s, "", oci.SHA256, layer(i))
	}
	clk.Advance(2 * time.Hour)

	ctx, cancel := context.WithCancel(context.Background())
	var gcErr error
	var runs, deleted int
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for ctx.Err() == nil {
			rep, err := s.GC(ctx, false, time.Hour)
			if err != nil && !errors.Is(err, context.Canceled) {
				gcErr = err
				return
			}
			runs++
			deleted += len(rep.Blobs)
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	pushed := map[string]image{}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range orphans / 4 {
				repo := fmt.Sprintf("w%d/r%d", w, i%3)
				tag := fmt.Sprintf("t%d", i)
				img := pushImage(t, s, repo, tag, []byte(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)), layer(w*orphans/4+i))
				mu.Lock()
				pushed[repo+":"+tag] = img
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	cancel()
	<-gcDone
	if gcErr != nil {
		t.Fatalf("GC during pushes = %v", gcErr)
	}
	clk.Advance(2 * time.Hour)
	if _, err := s.GC(context.Background(), false, 0); err != nil {
		t.Fatal(err)
	}
	for ref, img := range pushed {
		repo, tag, _ := strings.Cut(ref, ":")
		m, err := s.GetManifest(repo, tag)
		if err != nil || m.Digest != img.manifest {
			t.Errorf("GetManifest(%s) = %v, want %s", ref, err, img.manifest)
			continue
		}
		for _, d := range append([]oci.Digest{img.config}, img.layers...) {
			if _, err := s.BlobLinked(repo, d); err != nil {
				t.Errorf("BlobLinked(%s, %s) = %v", repo, d, err)
			}
		}
	}
	t.Logf("%d GC runs deleted %d blobs during %d pushes", runs, deleted, len(pushed))
}

func TestGCHonoursContext(t *testing.T) {
	sc := newGCScene(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sc.clk.Advance(48 * time.Hour)
	if _, err := sc.s.GC(ctx, false, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("GC(cancelled) = %v, want context.Canceled", err)
	}
	if _, err := sc.s.Stat(sc.orphanBlob); err != nil {
		t.Fatalf("cancelled GC deleted a blob: %v", err)
	}
}

// TestGCReplansAfterConcurrentPush pushes, between GC's plan and its apply,
// an image whose layer the plan had condemned: GC must notice and keep it.
// Pushes on every attempt make GC fall back to planning under the lock.
func TestGCReplansAfterConcurrentPush(t *testing.T) {
	for _, pushesDuring := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d racing pushes", pushesDuring), func(t *testing.T) {
			clk := newFakeClock()
			s := openStore(t, filepath.Join(t.TempDir(), "root"), Options{Now: clk.Now})
			var layers [][]byte
			for i := range pushesDuring {
				l := randBytes(uint64(50+i), 999)
				putBlob(t, s, "", oci.SHA256, l)
				layers = append(layers, l)
			}
			clk.Advance(2 * time.Hour)
			var imgs []image
			s.testHookPlanned = func(attempt int) {
				if attempt <= pushesDuring {
					imgs = append(imgs, pushImage(t, s, "app", fmt.Sprintf("v%d", attempt), []byte("{}"), layers[attempt-1]))
				}
			}
			rep, err := s.GC(context.Background(), false, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if want := pushesDuring + 1; rep.Attempts != want {
				t.Errorf("GC attempts = %d, want %d", rep.Attempts, want)
			}
			if len(rep.Blobs) != 0 {
				t.Errorf("GC deleted %v, want nothing (every orphan was pushed meanwhile)", rep.Blobs)
			}
			for _, img := range imgs {
				for _, d := range img.layers {
					if _, err := s.BlobLinked("app", d); err != nil {
						t.Errorf("BlobLinked(app, %s) after GC = %v", d, err)
					}
				}
			}
		})
	}
}
