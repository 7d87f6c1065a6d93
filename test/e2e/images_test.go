//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const refNameAnnotation = "org.opencontainers.image.ref.name"

// fixedTime keeps configs, tar headers and so digests stable across runs.
var fixedTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// buildMultiArchLayout writes an OCI layout at dir holding one image index,
// tagged refName: linux/amd64 and linux/arm64 images with layersPer layers
// of layerSize seeded random bytes each (tar+gzip). The same arguments give
// the same digests. It returns the index descriptor.
//
// The index JSON is written by hand, with the fields and field order of the
// OCI image-spec Go types that skopeo (containers/image) serializes with:
// go-containerregistry would add artifactType to each descriptor, which
// skopeo 1.9 drops, so such an index could never round-trip byte for byte.
func buildMultiArchLayout(t testing.TB, dir, refName string, seed uint64, layersPer, layerSize int) v1.Descriptor {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatalf("layout.Write(%s): %v", dir, err)
	}
	type platform struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	}
	type entry struct {
		MediaType types.MediaType `json:"mediaType"`
		Digest    string          `json:"digest"`
		Size      int64           `json:"size"`
		Platform  platform        `json:"platform"`
	}
	var entries []entry
	for i, arch := range []string{"amd64", "arm64"} {
		img := buildImage(t, arch, seed+uint64(i)*1000, layersPer, layerSize)
		if err := p.WriteImage(img); err != nil {
			t.Fatalf("write %s image to layout: %v", arch, err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		size, err := img.Size()
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, entry{MediaType: types.OCIManifestSchema1, Digest: d.String(), Size: size, Platform: platform{arch, "linux"}})
	}
	raw, err := json.Marshal(struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     types.MediaType `json:"mediaType"`
		Manifests     []entry         `json:"manifests"`
	}{2, types.OCIImageIndex, entries})
	if err != nil {
		t.Fatal(err)
	}
	h, size, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WriteBlob(h, io.NopCloser(bytes.NewReader(raw))); err != nil {
		t.Fatalf("write index blob: %v", err)
	}
	desc := v1.Descriptor{MediaType: types.OCIImageIndex, Digest: h, Size: size, Annotations: map[string]string{refNameAnnotation: refName}}
	if err := p.AppendDescriptor(desc); err != nil {
		t.Fatalf("add index to layout: %v", err)
	}
	return desc
}

// buildImage makes one OCI image for linux/arch with layers of seeded data.
func buildImage(t testing.TB, arch string, seed uint64, layers, size int) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for i := range layers {
		data := seededBytes(seed+uint64(i), size)
		tb := tarOf(t, "layer.bin", data)
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(tb)), nil
		}, tarball.WithCompressionLevel(gzip.BestSpeed), tarball.WithMediaType(types.OCILayer))
		if err != nil {
			t.Fatalf("layer: %v", err)
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: fixedTime}, CreatedBy: "e2e"}})
		if err != nil {
			t.Fatalf("append layer: %v", err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: fixedTime}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// tarOf returns a tar archive holding one file with fixed metadata.
func tarOf(t testing.TB, name string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: fixedTime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layoutRef returns the descriptor that index.json of the OCI layout at dir
// gives refName.
func layoutRef(t testing.TB, dir, refName string) v1.Descriptor {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(b, &im); err != nil {
		t.Fatalf("parse %s/index.json: %v", dir, err)
	}
	for _, d := range im.Manifests {
		if d.Annotations[refNameAnnotation] == refName {
			return d
		}
	}
	t.Fatalf("%s/index.json has no manifest named %q: %s", dir, refName, b)
	return v1.Descriptor{}
}

// layoutBlobs returns every blob file of the OCI layout at dir, digest → bytes.
func layoutBlobs(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, algo := range []string{"sha256", "sha512"} {
		entries, err := os.ReadDir(filepath.Join(dir, "blobs", algo))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, "blobs", algo, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[algo+":"+e.Name()] = b
		}
	}
	return out
}
