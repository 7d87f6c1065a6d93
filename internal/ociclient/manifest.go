package ociclient

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/airlockdev/airlock/internal/oci"
)

// Manifest is a fetched manifest or index, not yet parsed: callers parse
// it with oci.ParseManifest, with or without MediaType.
type Manifest struct {
	Body      []byte
	MediaType string     // the response's Content-Type
	Digest    oci.Digest // of Body: the reference's algorithm when it is a digest, else sha256
	URL       string     // where it came from
}

// DigestError: a manifest's bytes do not match the digest asked for, or
// the Docker-Content-Digest the registry sent.
type DigestError struct {
	URL    string
	Header oci.Digest // the Docker-Content-Digest that disagrees; empty: the reference does
	Got    oci.Digest
}

func (e *DigestError) Error() string {
	if e.Header != "" {
		return fmt.Sprintf("%s: Docker-Content-Digest %s but the body's digest is %s", e.URL, e.Header, e.Got)
	}
	return fmt.Sprintf("%s: the body's digest is %s", e.URL, e.Got)
}

// Manifest GETs repo's manifest ref (a tag or a digest), at most
// oci.MaxManifestSize+1 bytes of it (oci.ParseManifest rejects more). The
// body must match ref when ref is a digest, and the Docker-Content-Digest
// header when the registry sends one of the same algorithm; else a
// *DigestError.
func (c *Client) Manifest(ctx context.Context, repo, ref string) (Manifest, error) {
	m := Manifest{URL: c.URL(repo, "manifests", ref)}
	resp, err := c.Do(ctx, http.MethodGet, repo, "manifests", ref, oci.ManifestAccept)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	m.Body, err = io.ReadAll(io.LimitReader(resp.Body, oci.MaxManifestSize+1))
	if err != nil {
		return m, fmt.Errorf("reading %s: %w", m.URL, err)
	}
	m.MediaType = resp.Header.Get("Content-Type")
	alg := oci.Canonical
	want, derr := oci.ParseDigest(ref)
	if derr == nil {
		alg = want.Algorithm()
	}
	m.Digest = alg.FromBytes(m.Body)
	if derr == nil && m.Digest != want {
		return m, &DigestError{URL: m.URL, Got: m.Digest}
	}
	if hd := oci.Digest(resp.Header.Get("Docker-Content-Digest")); hd != "" && hd.Algorithm() == alg && hd != m.Digest {
		return m, &DigestError{URL: m.URL, Header: hd, Got: m.Digest}
	}
	return m, nil
}

// Blob GETs repo's blob d; the caller reads, verifies and closes the body.
func (c *Client) Blob(ctx context.Context, repo string, d oci.Digest) (*http.Response, error) {
	if _, err := oci.ParseDigest(string(d)); err != nil {
		return nil, err
	}
	return c.Do(ctx, http.MethodGet, repo, "blobs", string(d), "")
}

// HeadBlob HEADs repo's blob d; the response's body is closed.
func (c *Client) HeadBlob(ctx context.Context, repo string, d oci.Digest) (*http.Response, error) {
	resp, err := c.Do(ctx, http.MethodHead, repo, "blobs", string(d), "")
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}
