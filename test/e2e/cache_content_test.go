//go:build e2e

package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Content the cache tests seed into the upstream. Repository names are
// real mcr.microsoft.com ones (../shared/data/aks-images.txt and
// aks-oci-artifacts.txt); the bytes are made by the test.
const (
	pauseRepo   = "oss/v2/kubernetes/pause"
	pauseTag    = "3.6"
	kubeNodeRep = "oss/binaries/kubernetes/kubernetes-node"
	kubeNodeTag = "v1.31.14-linux-amd64"
	// kubeNodeArtifactType is the artifactType of the kubelet-tarball-like
	// artifact (an image manifest with an empty config and one tar+gzip
	// layer, as `oras push --artifact-type` makes it).
	kubeNodeArtifactType = "application/vnd.airlock.e2e.kubernetes-node.v1"
)

// upstreamRepo names repo on the upstream registry r for go-containerregistry.
func upstreamRepo(t testing.TB, r *registry, repo string) name.Repository {
	t.Helper()
	n, err := name.NewRepository(r.addr+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatalf("name.NewRepository(%s/%s): %v", r.addr, repo, err)
	}
	return n
}

// seedImage pushes img to repo:tag of the upstream and returns its blobs
// (config and layers).
func seedImage(t testing.TB, up *registry, repo, tag string, img v1.Image) []string {
	t.Helper()
	if err := remote.Write(upstreamRepo(t, up, repo).Tag(tag), img, remote.WithTransport(up.client().Transport)); err != nil {
		t.Fatalf("seed %s:%s into the upstream: %v", repo, tag, err)
	}
	return imageBlobs(t, img)
}

// seedIndex pushes idx to repo:tag of the upstream.
func seedIndex(t testing.TB, up *registry, repo, tag string, idx v1.ImageIndex) {
	t.Helper()
	if err := remote.WriteIndex(upstreamRepo(t, up, repo).Tag(tag), idx, remote.WithTransport(up.client().Transport)); err != nil {
		t.Fatalf("seed index %s:%s into the upstream: %v", repo, tag, err)
	}
}

// imageBlobs lists an image's config and layer digests.
func imageBlobs(t testing.TB, img v1.Image) []string {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{m.Config.Digest.String()}
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// multiArch is a linux/amd64 + linux/arm64 index and its images.
type multiArch struct {
	index        v1.ImageIndex
	amd64, arm64 v1.Image
}

// buildMultiArch makes an OCI index of two images with layers tar+gzip
// layers of size seeded bytes each.
func buildMultiArch(t testing.TB, seed uint64, layers, size int) multiArch {
	t.Helper()
	ma := multiArch{
		amd64: buildImage(t, "amd64", seed, layers, size),
		arm64: buildImage(t, "arm64", seed+1000, layers, size),
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range []struct {
		img  v1.Image
		arch string
	}{{ma.amd64, "amd64"}, {ma.arm64, "arm64"}} {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        p.img,
			Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Platform: &v1.Platform{OS: "linux", Architecture: p.arch}},
		})
	}
	ma.index = idx
	return ma
}

// artifact is an OCI artifact seeded byte for byte.
type artifact struct {
	manifest []byte
	digest   string // of manifest
	blobs    map[string][]byte
	layer    string // digest of the tarball layer
}

// buildKubeNodeArtifact makes a kubelet-tarball-shaped artifact: an image
// manifest with artifactType, the empty config and one tar+gzip layer
// holding kubernetes/node/bin/kubelet (size seeded bytes).
func buildKubeNodeArtifact(t testing.TB, seed uint64, size int) artifact {
	t.Helper()
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(tarOf(t, "kubernetes/node/bin/kubelet", seededBytes(seed, size)))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := []byte("{}")
	a := artifact{blobs: map[string][]byte{sha256Digest(cfg): cfg, sha256Digest(gz.Bytes()): gz.Bytes()}, layer: sha256Digest(gz.Bytes())}
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	m, err := json.Marshal(struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		ArtifactType  string            `json:"artifactType"`
		Config        desc              `json:"config"`
		Layers        []desc            `json:"layers"`
		Annotations   map[string]string `json:"annotations"`
	}{
		SchemaVersion: 2, MediaType: mtManifest, ArtifactType: kubeNodeArtifactType,
		Config: desc{MediaType: mtEmpty, Digest: sha256Digest(cfg), Size: int64(len(cfg))},
		Layers: []desc{{MediaType: mtLayer, Digest: a.layer, Size: int64(gz.Len()),
			Annotations: map[string]string{"org.opencontainers.image.title": "kubernetes-node-linux-amd64.tar.gz"}}},
		Annotations: map[string]string{"org.opencontainers.image.created": fixedTime.Format("2006-01-02T15:04:05Z")},
	})
	if err != nil {
		t.Fatal(err)
	}
	a.manifest, a.digest = m, sha256Digest(m)
	return a
}

// seedArtifact pushes a's blobs and manifest to repo:tag of the upstream.
func seedArtifact(t testing.TB, up *registry, repo, tag string, a artifact) {
	t.Helper()
	c := newOCIClient(up)
	for _, b := range a.blobs {
		c.pushBlob(t, repo, b)
	}
	c.pushManifest(t, repo, tag, mtManifest, a.manifest)
}

// seedBigBlob streams size seeded bytes into repo of the upstream as one
// blob (never in memory) and returns its digest.
func seedBigBlob(t testing.TB, up *registry, repo string, seed uint64, size int64) string {
	t.Helper()
	d := seededDigest(seed, size)
	c := newOCIClient(up)
	loc := c.startUpload(t, repo)
	req := c.newRequest(t, http.MethodPut, withQuery(loc, "digest", d), newSeededReader(seed, size))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.ContentLength = size
	if resp := c.send(t, req); resp.status != http.StatusCreated {
		t.Fatalf("seed %d-byte blob into %s = %d %s, want 201", size, repo, resp.status, resp.body)
	}
	return d
}

// seededRange returns bytes [off, off+n) of newSeededReader(seed, size).
func seededRange(seed uint64, size, off, n int64) []byte {
	b := seededBytes(seed, int(off+n))
	return b[off:]
}

func mib(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB" }
