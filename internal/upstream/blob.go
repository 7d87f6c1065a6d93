package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/prometheus/client_golang/prometheus"
)

// GetBlob opens a blob for streaming, from offset (offset > 0 sends
// Range: bytes=offset-, to resume). It returns the body positioned at
// offset and the blob's total size (-1 when the upstream does not say).
// Redirects (to storage) are followed.
//
// Opening is retried like any request, within Timeout; reading is not: a
// body that breaks off or delivers nothing for StallTimeout fails its Read
// with ErrUnavailable, and the caller may resume with a new offset. The
// caller verifies the digest and must Close the body, which gives back
// the connection slot it holds.
func (c *Client) GetBlob(ctx context.Context, host, repo string, d oci.Digest, offset int64) (io.ReadCloser, int64, error) {
	const op = "get blob"
	t, err := c.resolve(op, host, repo, string(d))
	if err != nil {
		return nil, 0, err
	}
	rq := &request{op: op, kind: "blob", method: http.MethodGet, t: t, ref: string(d),
		path: t.repo + "/blobs/" + string(d), header: http.Header{}}
	if _, err := oci.ParseDigest(string(d)); err != nil {
		return nil, 0, rq.fail(ErrInvalidRequest, "", err)
	}
	if offset < 0 {
		return nil, 0, rq.fail(ErrInvalidRequest, "", fmt.Errorf("negative offset %d", offset))
	}
	if offset > 0 {
		rq.header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	cl, err := c.exchange(ctx, rq)
	if err != nil {
		return nil, 0, err
	}
	total, skip, err := blobExtent(cl.resp, offset)
	if err != nil {
		cl.close()
		e := rq.fail(ErrBadResponse, reasonRange, err)
		e.Status = cl.resp.StatusCode
		return nil, 0, e
	}
	// From here the body is bounded by StallTimeout, not by Timeout.
	if !cl.timer.Stop() {
		cl.close()
		return nil, 0, c.failure(cl.ctx, rq, context.Cause(cl.ctx))
	}
	r := &blobReader{c: c, cl: cl, rq: rq, bytes: c.m.BytesReceived.WithLabelValues(t.host, "blob"), want: cl.resp.ContentLength}
	r.stall = time.AfterFunc(c.opt.StallTimeout, func() { cl.cancel(&stallError{c.opt.StallTimeout}) })
	if skip > 0 { // the upstream ignored Range: drop what the caller has
		if n, err := io.CopyN(io.Discard, r, skip); err != nil {
			r.Close()
			if err == io.EOF {
				err = rq.fail(ErrBadResponse, reasonRange, fmt.Errorf("blob ended after %d bytes, before offset %d", n, offset))
			}
			return nil, 0, err
		}
	}
	return r, total, nil
}

// blobExtent checks a blob response against the requested offset and
// returns the blob's total size (-1: unknown) and how many leading bytes
// of the body to skip (when a 200 ignored the Range).
func blobExtent(resp *http.Response, offset int64) (total, skip int64, err error) {
	switch resp.StatusCode {
	case http.StatusOK:
		total = resp.ContentLength
		if total >= 0 && offset > total {
			return 0, 0, fmt.Errorf("offset %d beyond the blob's %d bytes", offset, total)
		}
		return total, offset, nil
	case http.StatusPartialContent:
		start, end, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		switch {
		case !ok:
			return 0, 0, fmt.Errorf("206 with Content-Range %q", resp.Header.Get("Content-Range"))
		case start != offset:
			return 0, 0, fmt.Errorf("asked for bytes from %d, got Content-Range %q", offset, resp.Header.Get("Content-Range"))
		case resp.ContentLength >= 0 && resp.ContentLength != end-start+1:
			return 0, 0, fmt.Errorf("header Content-Length %d does not match Content-Range %q", resp.ContentLength, resp.Header.Get("Content-Range"))
		}
		return size, 0, nil
	}
	return 0, 0, fmt.Errorf("unexpected status %s", resp.Status)
}

// parseContentRange reads "bytes start-end/size" (size may be "*": -1).
func parseContentRange(v string) (start, end, size int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	s, e, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2 error
	start, err1 = strconv.ParseInt(s, 10, 64)
	end, err2 = strconv.ParseInt(e, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, 0, false
	}
	size = -1
	if sz != "*" {
		n, err := strconv.ParseInt(sz, 10, 64)
		if err != nil || n <= end {
			return 0, 0, 0, false
		}
		size = n
	}
	return start, end, size, true
}

// blobReader streams a blob body: it counts bytes, re-arms the stall
// timer on progress, turns read failures into *Error and gives the slot
// back on Close.
type blobReader struct {
	c     *Client
	cl    *call
	rq    *request
	bytes prometheus.Counter
	stall *time.Timer
	want  int64 // Content-Length, -1 unknown
	read  int64

	mu     sync.Mutex
	closed bool
}

func (r *blobReader) Read(p []byte) (int, error) {
	n, err := r.cl.resp.Body.Read(p)
	if n > 0 {
		r.stall.Reset(r.c.opt.StallTimeout)
		r.read += int64(n)
		r.bytes.Add(float64(n))
	}
	if err == nil || err == io.EOF {
		return n, err
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return n, errors.New("read of a closed blob body")
	}
	e := r.c.failure(r.cl.ctx, r.rq, err)
	e.Op = "read blob"
	e.retry = false
	if e.Reason == reasonConnect {
		e.Reason = reasonBroken
	}
	e.Err = fmt.Errorf("after %d of %d bytes: %w", r.read, r.want, e.Err)
	return n, e
}

func (r *blobReader) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stall.Stop()
	r.cl.close()
	return nil
}
