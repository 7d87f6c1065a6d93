package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/airlockdev/airlock/internal/oci"
)

// Referrers lists the manifests whose subject is d, optionally only those
// of artifactType. It asks the referrers API; when that answers 404 (or
// 405) — a registry without the API — it reads the referrers tag schema
// instead: the index tagged <alg>-<hex> (distribution-spec v1.1). No
// index under that tag means no referrers: an empty list, no error.
// The filter is applied here when the upstream did not apply it.
func (c *Client) Referrers(ctx context.Context, host, repo string, d oci.Digest, artifactType string) ([]oci.Descriptor, error) {
	const op = "get referrers"
	t, err := c.resolve(op, host, repo, string(d))
	if err != nil {
		return nil, err
	}
	rq := &request{op: op, kind: "referrers", method: http.MethodGet, t: t, ref: string(d),
		path: t.repo + "/referrers/" + string(d), header: http.Header{"Accept": {oci.MediaTypeImageIndex}}}
	if _, err := oci.ParseDigest(string(d)); err != nil {
		return nil, rq.fail(ErrInvalidRequest, "", err)
	}
	if artifactType != "" {
		if !oci.ValidMediaType(artifactType) {
			return nil, rq.fail(ErrInvalidRequest, "", fmt.Errorf("invalid artifactType %q", artifactType))
		}
		rq.query = url.Values{"artifactType": {artifactType}}
	}
	var out []oci.Descriptor
	rq.consume = func(cl *call) error {
		body, err := c.readBounded(cl, rq, oci.MaxManifestSize)
		if err != nil {
			return err
		}
		if out, err = parseReferrersIndex(body); err != nil {
			return rq.fail(ErrBadResponse, reasonIndex, err)
		}
		if !strings.Contains(cl.resp.Header.Get("OCI-Filters-Applied"), "artifactType") {
			out = filterArtifactType(out, artifactType)
		}
		return nil
	}
	_, err = c.exchange(ctx, rq)
	var e *Error
	if err == nil || !errors.As(err, &e) || e.Status != http.StatusNotFound && e.Status != http.StatusMethodNotAllowed {
		return out, err
	}
	m, err := c.GetManifest(ctx, host, repo, oci.Reference{Tag: fallbackTag(d)})
	switch {
	case errors.Is(err, ErrNotFound):
		return []oci.Descriptor{}, nil
	case err != nil:
		return nil, err
	case !m.Parsed.IsIndex():
		return nil, rq.fail(ErrBadResponse, reasonIndex, fmt.Errorf("referrers tag %s holds a %s, not an index", fallbackTag(d), m.Descriptor.MediaType))
	}
	return filterArtifactType(m.Parsed.Manifests, artifactType), nil
}

// fallbackTag is the referrers tag schema's tag for d: <alg>-<hex>, the
// algorithm truncated to 32 characters and the hex to 64.
func fallbackTag(d oci.Digest) string {
	alg, hex := string(d.Algorithm()), d.Hex()
	return alg[:min(len(alg), 32)] + "-" + hex[:min(len(hex), 64)]
}

// parseReferrersIndex validates a referrers API answer: an image index
// whose descriptors all have a media type and a valid digest.
func parseReferrersIndex(body []byte) ([]oci.Descriptor, error) {
	var idx oci.Index
	if err := json.Unmarshal(body, &idx); err != nil {
		return nil, fmt.Errorf("referrers response is not an index: %w", err)
	}
	if idx.MediaType != "" && idx.MediaType != oci.MediaTypeImageIndex {
		return nil, fmt.Errorf("referrers response has mediaType %q", idx.MediaType)
	}
	for i, d := range idx.Manifests {
		if !oci.ValidMediaType(d.MediaType) {
			return nil, fmt.Errorf("manifests[%d].mediaType %q is not a media type", i, d.MediaType)
		}
		if _, err := oci.ParseDigest(string(d.Digest)); err != nil {
			return nil, fmt.Errorf("manifests[%d].digest: %w", i, err)
		}
		if d.Size < 0 {
			return nil, fmt.Errorf("manifests[%d].size is negative", i)
		}
	}
	if idx.Manifests == nil {
		idx.Manifests = []oci.Descriptor{}
	}
	return idx.Manifests, nil
}

func filterArtifactType(ds []oci.Descriptor, artifactType string) []oci.Descriptor {
	if artifactType == "" {
		return ds
	}
	out := []oci.Descriptor{}
	for _, d := range ds {
		if d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	return out
}
