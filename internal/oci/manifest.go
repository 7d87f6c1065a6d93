package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// MaxManifestSize is the largest manifest airlock accepts (4 MiB), from a
// client or an upstream.
const MaxManifestSize = 4 << 20

// Errors returned by ParseManifest; the message after the sentinel says what
// is wrong.
var (
	ErrManifestInvalid  = errors.New("invalid manifest")
	ErrManifestTooLarge = errors.New("manifest too large")
)

// Platform describes the platform an index entry is for.
type Platform struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	OSVersion    string   `json:"os.version,omitempty"`
	OSFeatures   []string `json:"os.features,omitempty"`
	Variant      string   `json:"variant,omitempty"`
	Features     []string `json:"features,omitempty"`
}

// Descriptor points at content by digest.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       Digest            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Data         []byte            `json:"data,omitempty"`
	Platform     *Platform         `json:"platform,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
}

// Manifest is a parsed and validated image manifest or index (OCI or Docker
// schema 2). Exactly one of (Config, Layers) or Manifests is used, according
// to MediaType.
type Manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        *Descriptor       `json:"config,omitempty"`
	Layers        []Descriptor      `json:"layers,omitempty"`
	Manifests     []Descriptor      `json:"manifests,omitempty"`
	Subject       *Descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// References lists what the manifest points at and needs to exist: the
// config and layers of an image, or the child manifests of an index. The
// subject is not included: it may legitimately be absent.
func (m *Manifest) References() []Descriptor {
	var out []Descriptor
	if m.Config != nil {
		out = append(out, *m.Config)
	}
	out = append(out, m.Layers...)
	out = append(out, m.Manifests...)
	return out
}

// IsIndex reports whether the manifest is an index / manifest list.
func (m *Manifest) IsIndex() bool { return IsIndex(m.MediaType) }

// EffectiveArtifactType is the artifactType the referrers API reports: the
// artifactType field, or for an image manifest without one, the config's
// media type.
func (m *Manifest) EffectiveArtifactType() string {
	if m.ArtifactType != "" || m.IsIndex() || m.Config == nil {
		return m.ArtifactType
	}
	return m.Config.MediaType
}

// rawManifest keeps presence information that Manifest loses.
type rawManifest struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *Descriptor       `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Manifests     []Descriptor      `json:"manifests"`
	Subject       *Descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
	// Schema 1 fields, only to give a useful message.
	FSLayers json.RawMessage `json:"fsLayers"`
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrManifestInvalid, fmt.Sprintf(format, args...))
}

// ParseManifest validates body as a manifest. contentType is the media type
// the client declared (Content-Type of a PUT, or of an upstream response);
// it may be empty or generic, in which case the body's mediaType field or
// its shape decides. A declared type that contradicts the body is an error.
func ParseManifest(contentType string, body []byte) (*Manifest, error) {
	if len(body) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrManifestTooLarge, len(body), MaxManifestSize)
	}
	if !json.Valid(body) {
		return nil, invalid("body is not well-formed JSON")
	}
	var raw rawManifest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return nil, invalid("%v", cleanJSONError(err))
	}
	declared := BaseMediaType(contentType)
	if declared == "application/json" || declared == "application/octet-stream" {
		declared = ""
	}
	if declared == mediaTypeDockerV1 || declared == mediaTypeDockerV1Signed || raw.MediaType == mediaTypeDockerV1 || raw.MediaType == mediaTypeDockerV1Signed || raw.FSLayers != nil {
		return nil, invalid("Docker schema 1 manifests are not supported; push the image with schema 2 or OCI media types")
	}
	mt := declared
	switch {
	case mt == "" && raw.MediaType != "":
		mt = raw.MediaType
	case mt != "" && raw.MediaType != "" && raw.MediaType != mt:
		return nil, invalid("Content-Type %q does not match the manifest's mediaType %q", mt, raw.MediaType)
	case mt == "" && raw.Manifests != nil:
		mt = MediaTypeImageIndex
	case mt == "" && raw.Config != nil:
		mt = MediaTypeImageManifest
	}
	if !IsManifestMediaType(mt) {
		if mt == "" {
			return nil, invalid("no media type: set Content-Type or the mediaType field")
		}
		return nil, invalid("unsupported manifest media type %q", mt)
	}
	if raw.SchemaVersion == nil || *raw.SchemaVersion != 2 {
		return nil, invalid("schemaVersion must be 2")
	}
	m := &Manifest{
		SchemaVersion: 2,
		MediaType:     mt,
		ArtifactType:  raw.ArtifactType,
		Config:        raw.Config,
		Layers:        raw.Layers,
		Manifests:     raw.Manifests,
		Subject:       raw.Subject,
		Annotations:   raw.Annotations,
	}
	if m.ArtifactType != "" && !ValidMediaType(m.ArtifactType) {
		return nil, invalid("artifactType %q is not a media type", truncate(m.ArtifactType, 64))
	}
	if IsIndex(mt) {
		if raw.Manifests == nil {
			return nil, invalid("an index needs a manifests array")
		}
		if raw.Config != nil || raw.Layers != nil {
			return nil, invalid("an index has no config or layers")
		}
		for i := range m.Manifests {
			if err := checkDescriptor(&m.Manifests[i], fmt.Sprintf("manifests[%d]", i)); err != nil {
				return nil, err
			}
		}
	} else {
		if raw.Config == nil {
			return nil, invalid("an image manifest needs a config descriptor")
		}
		if raw.Manifests != nil {
			return nil, invalid("an image manifest has no manifests array")
		}
		if err := checkDescriptor(m.Config, "config"); err != nil {
			return nil, err
		}
		for i := range m.Layers {
			if err := checkDescriptor(&m.Layers[i], fmt.Sprintf("layers[%d]", i)); err != nil {
				return nil, err
			}
		}
	}
	if m.Subject != nil {
		if err := checkDescriptor(m.Subject, "subject"); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func checkDescriptor(d *Descriptor, where string) error {
	if !ValidMediaType(d.MediaType) {
		return invalid("%s.mediaType %q is not a media type", where, truncate(d.MediaType, 64))
	}
	if _, err := ParseDigest(string(d.Digest)); err != nil {
		return invalid("%s.digest: %v", where, err)
	}
	if d.Size < 0 {
		return invalid("%s.size must not be negative", where)
	}
	if d.ArtifactType != "" && !ValidMediaType(d.ArtifactType) {
		return invalid("%s.artifactType %q is not a media type", where, truncate(d.ArtifactType, 64))
	}
	if d.Data != nil && int64(len(d.Data)) != d.Size {
		return invalid("%s.data holds %d bytes but size says %d", where, len(d.Data), d.Size)
	}
	if d.Data != nil && d.Digest.Algorithm().FromBytes(d.Data) != d.Digest {
		return invalid("%s.data does not match its digest", where)
	}
	return nil
}

// cleanJSONError keeps the decoder's message but drops Go type names.
func cleanJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q has the wrong type (%s)", te.Field, te.Value)
	}
	return err.Error()
}

// Index is the document the referrers API returns.
type Index struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Manifests     []Descriptor      `json:"manifests"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}
