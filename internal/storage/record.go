package storage

import "github.com/airlockdev/airlock/internal/oci"

// ManifestRecord is a manifest as a Store keeps it. The registry parses
// and validates the body; a Store checks only that Body hashes to Digest
// and that the metadata is well formed.
type ManifestRecord struct {
	Digest    oci.Digest
	MediaType string
	Body      []byte
	// Subject, ArtifactType and Annotations feed the referrers index
	// (ArtifactType as the referrers API reports it, e.g.
	// oci.Manifest.EffectiveArtifactType).
	Subject      *oci.Digest
	ArtifactType string
	Annotations  map[string]string
}

// NewManifestRecord builds the record for a validated manifest body: the
// referrers index needs its subject, artifact type and annotations.
func NewManifestRecord(d oci.Digest, m *oci.Manifest, body []byte) ManifestRecord {
	rec := ManifestRecord{Digest: d, MediaType: m.MediaType, Body: body,
		ArtifactType: m.EffectiveArtifactType(), Annotations: m.Annotations}
	if m.Subject != nil {
		sd := m.Subject.Digest
		rec.Subject = &sd
	}
	return rec
}

// Descriptor is the record's descriptor (digest, media type, size).
func (m ManifestRecord) Descriptor() oci.Descriptor {
	return oci.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: int64(len(m.Body))}
}
