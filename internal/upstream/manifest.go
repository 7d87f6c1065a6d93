package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/airlockdev/airlock/internal/oci"
)

// Manifest is a manifest fetched from an upstream: its bytes, verified
// against its digest, and their parsed form.
type Manifest struct {
	// Descriptor: MediaType as resolved by oci.ParseManifest, Digest of
	// Body (with the algorithm of the requested or announced digest,
	// sha256 otherwise), Size = len(Body).
	Descriptor oci.Descriptor
	Body       []byte
	Parsed     *oci.Manifest
}

func (c *Client) manifestRequest(op, method, host, repo string, ref oci.Reference) (*request, error) {
	t, err := c.resolve(op, host, repo, ref.String())
	if err != nil {
		return nil, err
	}
	rq := &request{op: op, kind: "manifest", method: method, t: t, ref: ref.String(),
		path: t.repo + "/manifests/" + ref.String(), header: http.Header{"Accept": {oci.ManifestAccept}}}
	if err := checkReference(ref); err != nil {
		return nil, rq.fail(ErrInvalidRequest, "", err)
	}
	return rq, nil
}

func checkReference(ref oci.Reference) error {
	if ref.IsDigest() {
		if ref.Tag != "" {
			return errors.New("reference has both a tag and a digest")
		}
		_, err := oci.ParseDigest(string(ref.Digest))
		return err
	}
	if !oci.ValidTag(ref.Tag) {
		return fmt.Errorf("invalid tag %q", ref.Tag)
	}
	return nil
}

// HeadManifest returns the descriptor (digest, media type, size) of a
// manifest from the response headers of a HEAD request, the cheap way to
// revalidate a tag. When the upstream leaves out Docker-Content-Digest,
// Content-Length or a manifest Content-Type, it falls back to GetManifest.
func (c *Client) HeadManifest(ctx context.Context, host, repo string, ref oci.Reference) (oci.Descriptor, error) {
	rq, err := c.manifestRequest("head manifest", http.MethodHead, host, repo, ref)
	if err != nil {
		return oci.Descriptor{}, err
	}
	var d oci.Descriptor
	fallback := false
	rq.consume = func(cl *call) error {
		h := cl.resp.Header
		mt := oci.BaseMediaType(h.Get("Content-Type"))
		if h.Get("Docker-Content-Digest") == "" || cl.resp.ContentLength < 0 || !oci.IsManifestMediaType(mt) {
			fallback = true
			return nil
		}
		dg, err := oci.ParseDigest(h.Get("Docker-Content-Digest"))
		if err != nil {
			return rq.fail(ErrBadResponse, reasonHeader, fmt.Errorf("header Docker-Content-Digest: %w", err))
		}
		if ref.IsDigest() && dg != ref.Digest {
			return rq.fail(ErrBadResponse, reasonDigest, fmt.Errorf("header Docker-Content-Digest is %s", dg))
		}
		if cl.resp.ContentLength > oci.MaxManifestSize {
			return rq.fail(ErrBadResponse, reasonTooLarge, fmt.Errorf("header Content-Length %d", cl.resp.ContentLength))
		}
		d = oci.Descriptor{MediaType: mt, Digest: dg, Size: cl.resp.ContentLength}
		return nil
	}
	if _, err := c.exchange(ctx, rq); err != nil {
		return oci.Descriptor{}, err
	}
	if fallback {
		m, err := c.GetManifest(ctx, host, repo, ref)
		return m.Descriptor, err
	}
	return d, nil
}

// GetManifest fetches a manifest (at most oci.MaxManifestSize bytes),
// verifies it against the requested digest and against
// Docker-Content-Digest when the upstream sends one, and parses it. Any
// failed check is ErrBadResponse; the bytes are never returned then.
func (c *Client) GetManifest(ctx context.Context, host, repo string, ref oci.Reference) (Manifest, error) {
	rq, err := c.manifestRequest("get manifest", http.MethodGet, host, repo, ref)
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	rq.consume = func(cl *call) error {
		body, err := c.readBounded(cl, rq, oci.MaxManifestSize)
		if err != nil {
			return err
		}
		want := ref.Digest
		if hd := cl.resp.Header.Get("Docker-Content-Digest"); hd != "" {
			dg, err := oci.ParseDigest(hd)
			if err != nil {
				return rq.fail(ErrBadResponse, reasonHeader, fmt.Errorf("header Docker-Content-Digest: %w", err))
			}
			if want != "" && dg != want {
				return rq.fail(ErrBadResponse, reasonDigest, fmt.Errorf("header Docker-Content-Digest is %s", dg))
			}
			want = dg
		}
		alg := oci.Canonical
		if want != "" {
			alg = want.Algorithm()
		}
		got := alg.FromBytes(body)
		if want != "" && got != want {
			return rq.fail(ErrBadResponse, reasonDigest, fmt.Errorf("body hashes to %s, expected %s", got, want))
		}
		ct := oci.BaseMediaType(cl.resp.Header.Get("Content-Type"))
		if !oci.IsManifestMediaType(ct) {
			ct = "" // generic or wrong: let the body decide
		}
		parsed, err := oci.ParseManifest(ct, body)
		if err != nil {
			return rq.fail(ErrBadResponse, reasonManifest, err)
		}
		m = Manifest{Descriptor: oci.Descriptor{MediaType: parsed.MediaType, Digest: got, Size: int64(len(body))}, Body: body, Parsed: parsed}
		return nil
	}
	if _, err := c.exchange(ctx, rq); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// readBounded reads a whole body of at most limit bytes inside an attempt.
// A declared or actual size over the limit is ErrBadResponse; a body that
// breaks off is ErrUnavailable and retried.
func (c *Client) readBounded(cl *call, rq *request, limit int64) ([]byte, error) {
	if cl.resp.ContentLength > limit {
		return nil, rq.fail(ErrBadResponse, reasonTooLarge, fmt.Errorf("header Content-Length %d exceeds %d", cl.resp.ContentLength, limit))
	}
	body, err := io.ReadAll(io.LimitReader(cl.resp.Body, limit+1))
	c.m.BytesReceived.WithLabelValues(rq.t.host, rq.kind).Add(float64(len(body)))
	if err != nil {
		e := c.failure(cl.ctx, rq, err)
		if e.Reason == reasonConnect {
			e.Reason = reasonBroken
		}
		e.Err = fmt.Errorf("body broke off after %d of %d bytes: %w", len(body), cl.resp.ContentLength, e.Err)
		return nil, e
	}
	if int64(len(body)) > limit {
		return nil, rq.fail(ErrBadResponse, reasonTooLarge, fmt.Errorf("body exceeds %d bytes", limit))
	}
	return body, nil
}
