package blobstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/airlockdev/airlock/internal/oci"
)

func TestManifestRoundTrip(t *testing.T) {
	for _, alg := range []oci.Algorithm{oci.SHA256, oci.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			s := newStore(t)
			cfg := putBlob(t, s, "lib/app", alg, []byte(`{"architecture":"amd64"}`))
			layer := putBlob(t, s, "lib/app", alg, randBytes(1, 1000))
			body := imageManifest(t, desc("application/vnd.oci.image.config.v1+json", cfg, 24),
				[]oci.Descriptor{desc("application/vnd.oci.image.layer.v1.tar", layer, 1000)}, nil)
			d := alg.FromBytes(body)
			rec := ManifestRecord{Digest: d, MediaType: oci.MediaTypeImageManifest, Body: body, Annotations: map[string]string{"a": "b"}}
			if err := s.PutManifest("lib/app", rec, "v1"); err != nil {
				t.Fatalf("PutManifest = %v", err)
			}
			for _, ref := range []string{"v1", string(d)} {
				got, err := s.GetManifest("lib/app", ref)
				if err != nil {
					t.Fatalf("GetManifest(%s) = %v", ref, err)
				}
				if diff := cmp.Diff(rec, got); diff != "" {
					t.Errorf("GetManifest(%s) mismatch (-want +got):\n%s", ref, diff)
				}
				gd, mt, size, err := s.StatManifest("lib/app", ref)
				if err != nil || gd != d || mt != oci.MediaTypeImageManifest || size != int64(len(body)) {
					t.Errorf("StatManifest(%s) = %s, %s, %d, %v; want %s, %s, %d", ref, gd, mt, size, err, d, oci.MediaTypeImageManifest, len(body))
				}
			}
			if size, err := s.BlobLinked("lib/app", d); err != nil || size != int64(len(body)) {
				t.Errorf("BlobLinked(manifest digest) = %d, %v; want %d", size, err, len(body))
			}
			if tags, err := s.Tags("lib/app"); err != nil || !slices.Equal(tags, []string{"v1"}) {
				t.Errorf("Tags = %v, %v; want [v1]", tags, err)
			}
			if repos, err := s.Repositories(); err != nil || !slices.Equal(repos, []string{"lib/app"}) {
				t.Errorf("Repositories = %v, %v; want [lib/app]", repos, err)
			}
		})
	}
}

func TestManifestErrors(t *testing.T) {
	s := newStore(t)
	img := pushImage(t, s, "app", "v1", []byte("{}"), randBytes(2, 100))
	other := oci.SHA256.FromBytes([]byte("nothing"))
	tests := []struct {
		name    string
		repo    string
		ref     string
		wantErr error
	}{
		{"unknown repository by tag", "nope", "v1", ErrNameUnknown},
		{"unknown repository by digest", "nope", string(img.manifest), ErrNameUnknown},
		{"unknown tag", "app", "v2", ErrTagUnknown},
		{"unknown tag is manifest unknown", "app", "v2", ErrManifestUnknown},
		{"unknown digest", "app", string(other), ErrManifestUnknown},
		{"manifest of another repository", "app2", string(img.manifest), ErrNameUnknown},
		{"invalid reference", "app", "-bad", ErrReferenceInvalid},
		{"invalid digest", "app", "sha256:xyz", ErrDigestInvalid},
		{"invalid name", "App", "v1", ErrNameInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.GetManifest(tt.repo, tt.ref); !errors.Is(err, tt.wantErr) {
				t.Errorf("GetManifest(%s, %s) = %v, want %v", tt.repo, tt.ref, err, tt.wantErr)
			}
			if _, _, _, err := s.StatManifest(tt.repo, tt.ref); !errors.Is(err, tt.wantErr) {
				t.Errorf("StatManifest(%s, %s) = %v, want %v", tt.repo, tt.ref, err, tt.wantErr)
			}
		})
	}
	// A repository with only a blob link exists: unknown manifests in it are
	// MANIFEST_UNKNOWN, not NAME_UNKNOWN.
	putBlob(t, s, "app2", oci.SHA256, []byte("layer"))
	if _, err := s.GetManifest("app2", string(img.manifest)); !errors.Is(err, ErrManifestUnknown) {
		t.Errorf("GetManifest(app2 with a blob, other manifest) = %v, want ErrManifestUnknown", err)
	}
}

func TestPutManifestRejects(t *testing.T) {
	body := []byte(`{"schemaVersion":2}`)
	d := oci.SHA256.FromBytes(body)
	bad := oci.Digest("sha256:../x")
	tests := []struct {
		name    string
		rec     ManifestRecord
		tag     string
		wantErr error
	}{
		{"wrong digest", ManifestRecord{Digest: oci.SHA256.FromBytes([]byte("x")), MediaType: oci.MediaTypeImageManifest, Body: body}, "", ErrDigestMismatch},
		{"bad tag", ManifestRecord{Digest: d, MediaType: oci.MediaTypeImageManifest, Body: body}, "../x", ErrReferenceInvalid},
		{"bad media type", ManifestRecord{Digest: d, MediaType: "not a type", Body: body}, "", ErrManifestInvalid},
		{"bad subject", ManifestRecord{Digest: d, MediaType: oci.MediaTypeImageManifest, Body: body, Subject: &bad}, "", ErrDigestInvalid},
		{"too large", ManifestRecord{Digest: oci.SHA256.FromBytes(make([]byte, oci.MaxManifestSize+1)), MediaType: oci.MediaTypeImageManifest, Body: make([]byte, oci.MaxManifestSize+1)}, "", ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if err := s.PutManifest("app", tt.rec, tt.tag); !errors.Is(err, tt.wantErr) {
				t.Fatalf("PutManifest = %v, want %v", err, tt.wantErr)
			}
			if got := blobFiles(t, s); len(got) != 0 {
				t.Errorf("blob files = %v, want none", got)
			}
			if repos, _ := s.Repositories(); len(repos) != 0 {
				t.Errorf("Repositories = %v, want none", repos)
			}
		})
	}
}

func TestRetagAndDeleteTag(t *testing.T) {
	s := newStore(t)
	a := pushImage(t, s, "app", "latest", []byte("{}"), []byte("a"))
	b := pushImage(t, s, "app", "latest", []byte("{}"), []byte("b"))
	if d, _, _, err := s.StatManifest("app", "latest"); err != nil || d != b.manifest {
		t.Fatalf("StatManifest(latest) after retag = %s, %v; want %s", d, err, b.manifest)
	}
	if err := s.DeleteTag("app", "latest"); err != nil {
		t.Fatalf("DeleteTag = %v", err)
	}
	if err := s.DeleteTag("app", "latest"); !errors.Is(err, ErrManifestUnknown) {
		t.Fatalf("DeleteTag again = %v, want ErrManifestUnknown", err)
	}
	if _, err := s.GetManifest("app", "latest"); !errors.Is(err, ErrManifestUnknown) {
		t.Fatalf("GetManifest(deleted tag) = %v, want ErrManifestUnknown", err)
	}
	for _, img := range []image{a, b} {
		if _, err := s.GetManifest("app", string(img.manifest)); err != nil {
			t.Errorf("GetManifest(%s) after DeleteTag = %v, want kept", img.manifest, err)
		}
	}
	if tags, err := s.Tags("app"); err != nil || len(tags) != 0 || tags == nil {
		t.Errorf("Tags = %#v, %v; want empty non-nil list", tags, err)
	}
}

func TestDeleteManifest(t *testing.T) {
	s := newStore(t)
	img := pushImage(t, s, "app", "v1", []byte("{}"), []byte("layer"))
	for _, tag := range []string{"v1.0", "stable"} {
		if err := s.PutManifest("app", ManifestRecord{Digest: img.manifest, MediaType: oci.MediaTypeImageManifest, Body: img.body}, tag); err != nil {
			t.Fatal(err)
		}
	}
	keep := pushImage(t, s, "app", "other", []byte("{}"), []byte("layer2"))
	sig := pushReferrer(t, s, "app", img.manifest, "application/vnd.example.sig", "")

	if err := s.DeleteManifest("app", img.manifest); err != nil {
		t.Fatalf("DeleteManifest = %v", err)
	}
	if err := s.DeleteManifest("app", img.manifest); !errors.Is(err, ErrManifestUnknown) {
		t.Fatalf("DeleteManifest again = %v, want ErrManifestUnknown", err)
	}
	if tags, _ := s.Tags("app"); !slices.Equal(tags, []string{"other"}) {
		t.Errorf("Tags after delete = %v, want [other]", tags)
	}
	if _, err := s.GetManifest("app", string(img.manifest)); !errors.Is(err, ErrManifestUnknown) {
		t.Errorf("GetManifest(deleted) = %v, want ErrManifestUnknown", err)
	}
	if _, err := s.GetManifest("app", string(keep.manifest)); err != nil {
		t.Errorf("GetManifest(other) = %v", err)
	}
	// The referrer of the deleted manifest is still listed (its subject
	// was deleted, not it); deleting the referrer removes its entry.
	if refs, _ := s.Referrers("app", img.manifest); len(refs) != 1 || refs[0].Digest != sig {
		t.Errorf("Referrers after subject delete = %v, want [%s]", refs, sig)
	}
	if err := s.DeleteManifest("app", sig); err != nil {
		t.Fatal(err)
	}
	if refs, err := s.Referrers("app", img.manifest); err != nil || len(refs) != 0 {
		t.Errorf("Referrers after referrer delete = %v, %v; want empty", refs, err)
	}
}

// pushReferrer pushes a manifest with the given subject and returns its digest.
func pushReferrer(t testing.TB, s *Store, repo string, subject oci.Digest, artifactType, tag string) oci.Digest {
	t.Helper()
	cfgBytes := []byte(fmt.Sprintf("{%q:%q}", artifactType, tag))
	cfg := putBlob(t, s, repo, oci.SHA256, cfgBytes)
	body := imageManifest(t, desc(artifactType, cfg, len(cfgBytes)), nil, &oci.Descriptor{MediaType: oci.MediaTypeImageManifest, Digest: subject, Size: 1})
	d := oci.SHA256.FromBytes(body)
	rec := ManifestRecord{Digest: d, MediaType: oci.MediaTypeImageManifest, Body: body, Subject: &subject, ArtifactType: artifactType,
		Annotations: map[string]string{"org.example": string(d)[:20]}}
	if err := s.PutManifest(repo, rec, tag); err != nil {
		t.Fatalf("PutManifest(referrer) = %v", err)
	}
	return d
}

func TestReferrers(t *testing.T) {
	s := newStore(t)
	// The subject need not exist.
	subject := oci.SHA256.FromBytes([]byte("not pushed yet"))
	var want []oci.Descriptor
	for i, at := range []string{"application/vnd.example.sig", "application/vnd.example.sbom", "application/vnd.example.sig"} {
		d := pushReferrer(t, s, "app", subject, at, fmt.Sprintf("t%d", i))
		m, err := s.GetManifest("app", string(d))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, oci.Descriptor{MediaType: oci.MediaTypeImageManifest, Digest: d, Size: int64(len(m.Body)), ArtifactType: at, Annotations: m.Annotations})
	}
	slices.SortFunc(want, func(a, b oci.Descriptor) int { return cmpString(string(a.Digest), string(b.Digest)) })
	got, err := s.Referrers("app", subject)
	if err != nil {
		t.Fatalf("Referrers = %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Referrers mismatch (-want +got):\n%s", diff)
	}
	if got, err := s.Referrers("app", oci.SHA512.FromBytes(nil)); err != nil || got == nil || len(got) != 0 {
		t.Errorf("Referrers(no referrers) = %#v, %v; want empty, nil", got, err)
	}
	if _, err := s.Referrers("other", subject); !errors.Is(err, ErrNameUnknown) {
		t.Errorf("Referrers(unknown repo) = %v, want ErrNameUnknown", err)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestManyTagsSorted: thousands of tags list in byte order (uppercase before
// '_' before lowercase).
func TestManyTagsSorted(t *testing.T) {
	s := newStore(t)
	img := pushImage(t, s, "app", "", []byte("{}"), []byte("l"))
	rec := ManifestRecord{Digest: img.manifest, MediaType: oci.MediaTypeImageManifest, Body: img.body}
	const n = 2000
	var want []string
	for i := range n {
		prefix := []string{"v", "V", "_", "0", "Z"}[i%5]
		want = append(want, fmt.Sprintf("%s%d.%d-rc", prefix, i, i%7))
	}
	order := rand.New(rand.NewPCG(1, 2)).Perm(n)
	var wg sync.WaitGroup
	work := make(chan string)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tag := range work {
				if err := s.PutManifest("app", rec, tag); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for _, i := range order {
		work <- want[i]
	}
	close(work)
	wg.Wait()
	slices.Sort(want)
	got, err := s.Tags("app")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Tags() = %d tags, first %v; want %d sorted, first %v", len(got), got[:min(5, len(got))], n, want[:5])
	}
	if _, err := s.Tags("unknown"); !errors.Is(err, ErrNameUnknown) {
		t.Errorf("Tags(unknown) = %v, want ErrNameUnknown", err)
	}
}

func TestBlobLinks(t *testing.T) {
	s := newStore(t)
	b := []byte("layer bytes")
	d := putBlob(t, s, "", oci.SHA256, b)
	missing := oci.SHA256.FromBytes([]byte("missing"))
	if _, err := s.BlobLinked("a", d); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("BlobLinked(not linked) = %v, want ErrBlobUnknown", err)
	}
	if err := s.LinkBlob("a", missing); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("LinkBlob(missing blob) = %v, want ErrBlobUnknown", err)
	}
	if err := s.LinkBlob("a", d); err != nil {
		t.Fatal(err)
	}
	if err := s.LinkBlob("a", d); err != nil {
		t.Fatalf("LinkBlob twice = %v", err)
	}
	if size, err := s.BlobLinked("a", d); err != nil || size != int64(len(b)) {
		t.Fatalf("BlobLinked = %d, %v; want %d", size, err, len(b))
	}
	if _, err := s.BlobLinked("b", d); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("BlobLinked(other repo) = %v, want ErrBlobUnknown", err)
	}
	if err := s.UnlinkBlob("a", d); err != nil {
		t.Fatal(err)
	}
	if err := s.UnlinkBlob("a", d); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("UnlinkBlob twice = %v, want ErrBlobUnknown", err)
	}
	if _, err := s.BlobLinked("a", d); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("BlobLinked after unlink = %v, want ErrBlobUnknown", err)
	}
	if _, err := s.Stat(d); err != nil {
		t.Fatalf("Stat after unlink = %v, want blob kept until GC", err)
	}
}

func TestRepositories(t *testing.T) {
	s := newStore(t)
	pushImage(t, s, "a", "v1", []byte("{}"), []byte("1"))
	putBlob(t, s, "a/b", oci.SHA256, []byte("2"))
	d := putBlob(t, s, "c/d/e", oci.SHA512, []byte("3"))
	want := []string{"a", "a/b", "c/d/e"}
	if got, err := s.Repositories(); err != nil || !slices.Equal(got, want) {
		t.Fatalf("Repositories = %v, %v; want %v", got, err, want)
	}
	if err := s.UnlinkBlob("c/d/e", d); err != nil {
		t.Fatal(err)
	}
	want = []string{"a", "a/b"}
	if got, err := s.Repositories(); err != nil || !slices.Equal(got, want) {
		t.Fatalf("Repositories after unlink = %v, %v; want %v", got, err, want)
	}
	if _, err := s.Tags("c/d/e"); !errors.Is(err, ErrNameUnknown) {
		t.Errorf("Tags(emptied repo) = %v, want ErrNameUnknown", err)
	}
}

func TestGetManifestDetectsCorruption(t *testing.T) {
	s := newStore(t)
	img := pushImage(t, s, "app", "v1", []byte("{}"), []byte("x"))
	b := bytes.Clone(img.body)
	b[0] = ' '
	// The body kept in the revision record.
	var rev revisionFile
	raw, err := os.ReadFile(s.revisionPath("app", img.manifest))
	if err == nil {
		err = json.Unmarshal(raw, &rev)
	}
	if err != nil {
		t.Fatal(err)
	}
	rev.Body = b
	raw, _ = json.Marshal(rev)
	if err := writeFileForTest(s.revisionPath("app", img.manifest), raw); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetManifest("app", "v1"); err == nil {
		t.Fatal("GetManifest(corrupt body in the revision) = nil error, want an error")
	}
	// A record written before bodies were kept in it: the blob is read.
	rev.Body = nil
	raw, _ = json.Marshal(rev)
	if err := writeFileForTest(s.revisionPath("app", img.manifest), raw); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetManifest("app", "v1"); err != nil {
		t.Fatalf("GetManifest(record without body) = %v, want the manifest from its blob", err)
	}
	if err := writeFileForTest(s.blobPath(img.manifest), b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetManifest("app", "v1"); err == nil {
		t.Fatal("GetManifest(corrupt blob) = nil error, want an error")
	}
}

// A manifest just under the 4 MiB limit, all of it annotations, fits in
// its revision record (which holds both the body and the annotations).
func TestManifestNearLimitWithAnnotations(t *testing.T) {
	s := newStore(t)
	ann := map[string]string{"pad": strings.Repeat("a", oci.MaxManifestSize-1024)}
	body, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeImageManifest, "annotations": ann})
	if err != nil {
		t.Fatal(err)
	}
	rec := ManifestRecord{Digest: oci.SHA256.FromBytes(body), MediaType: oci.MediaTypeImageManifest, Body: body, Annotations: ann}
	if err := s.PutManifest("big", rec, "v1"); err != nil {
		t.Fatalf("PutManifest(%d bytes of annotations) = %v", len(body), err)
	}
	if m, err := s.GetManifest("big", "v1"); err != nil || m.Digest != rec.Digest {
		t.Fatalf("GetManifest = %v", err)
	}
}
