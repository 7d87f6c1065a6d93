package storagetest

import (
	"encoding/json"
	"fmt"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// Fixture is one image (a config blob, a layer blob and the manifest that
// references both) in one repository, under one tag.
type Fixture struct {
	Repo     string
	Tag      string
	Config   []byte
	Layer    []byte
	Manifest []byte // an OCI image manifest of Config and Layer
}

// NewFixture returns an image in repo under tag "v1". seed makes its
// content (and so its digests) distinct from other fixtures'.
func NewFixture(repo, seed string) Fixture {
	f := Fixture{Repo: repo, Tag: "v1",
		Config: []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","seed":%q}`, seed)),
		Layer:  layerBytes(seed, 200<<10),
	}
	f.Manifest = imageManifest(f.Config, f.Layer, nil)
	return f
}

// layerBytes is n bytes that depend on seed (not compressible to nothing,
// so a read that drops or repeats a stretch shows).
func layerBytes(seed string, n int) []byte {
	b := make([]byte, n)
	x := uint32(2166136261)
	for _, c := range []byte(seed) {
		x = (x ^ uint32(c)) * 16777619
	}
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// imageManifest is an OCI image manifest of config and layer, with subject
// (a referrer) when not nil.
func imageManifest(config, layer []byte, subject *oci.Descriptor) []byte {
	type desc struct {
		MediaType string     `json:"mediaType"`
		Digest    oci.Digest `json:"digest"`
		Size      int64      `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		ArtifactType  string `json:"artifactType,omitempty"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
		Subject       *desc  `json:"subject,omitempty"`
	}{
		SchemaVersion: 2,
		MediaType:     oci.MediaTypeImageManifest,
		Config:        desc{"application/vnd.oci.image.config.v1+json", oci.SHA256.FromBytes(config), int64(len(config))},
		Layers:        []desc{{"application/vnd.oci.image.layer.v1.tar", oci.SHA256.FromBytes(layer), int64(len(layer))}},
	}
	if subject != nil {
		m.ArtifactType = "application/vnd.example.signature"
		m.Subject = &desc{subject.MediaType, subject.Digest, subject.Size}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // static shape: cannot fail
	}
	return b
}

// ConfigDigest, LayerDigest and ManifestDigest are the fixture's digests.
func (f Fixture) ConfigDigest() oci.Digest   { return oci.SHA256.FromBytes(f.Config) }
func (f Fixture) LayerDigest() oci.Digest    { return oci.SHA256.FromBytes(f.Layer) }
func (f Fixture) ManifestDigest() oci.Digest { return oci.SHA256.FromBytes(f.Manifest) }

// ManifestDescriptor describes the fixture's manifest.
func (f Fixture) ManifestDescriptor() oci.Descriptor {
	return oci.Descriptor{MediaType: oci.MediaTypeImageManifest, Digest: f.ManifestDigest(), Size: int64(len(f.Manifest))}
}

// record is the manifest as a Store takes it.
func record(body []byte) storage.ManifestRecord {
	m, err := oci.ParseManifest(oci.MediaTypeImageManifest, body)
	if err != nil {
		panic(err) // built by imageManifest: always valid
	}
	return storage.NewManifestRecord(oci.SHA256.FromBytes(body), m, body)
}
