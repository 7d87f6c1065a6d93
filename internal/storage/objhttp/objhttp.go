// Package objhttp holds what the object-storage drivers (azblob, s3) share
// on top of their SDKs' HTTP clients: a transport that reports every
// storage request to a storage.Observer, an HTTP client with the timeouts
// that make an unreachable storage fail fast, and a lazy reader that turns
// Seek and Read into one ranged GET per contiguous read.
package objhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/airlockdev/airlock/internal/storage"
)

// Timeouts of the storage HTTP client. Connecting and the response header
// are bounded so an unreachable or stalled storage fails fast; a body may
// stream as long as bytes keep coming.
const (
	DialTimeout           = 5 * time.Second
	ResponseHeaderTimeout = 30 * time.Second
	TLSHandshakeTimeout   = 10 * time.Second
)

type opKey struct{}

// WithOp names the storage operation of the requests sent with ctx; the
// Observer sees it (drivers set it per call, e.g. "PutBlock").
func WithOp(ctx context.Context, op string) context.Context {
	return context.WithValue(ctx, opKey{}, op)
}

// Op is the operation WithOp put in ctx, or the request's method.
func Op(r *http.Request) string {
	if op, ok := r.Context().Value(opKey{}).(string); ok {
		return op
	}
	return r.Method
}

// Client is an HTTP client for a storage endpoint: bounded dial, TLS and
// response-header times, many idle connections per host (a registry
// serves many blobs at once), every request reported to obs (nil: none).
func Client(obs storage.Observer) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil, // storage is reached directly, never through an environment proxy
		DialContext:           (&net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   TLSHandshakeTimeout,
		ResponseHeaderTimeout: ResponseHeaderTimeout,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: Observe(tr, obs)}
}

// Observe wraps base so that every request is reported to obs once its
// response body is closed (or at once when the request fails).
func Observe(base http.RoundTripper, obs storage.Observer) http.RoundTripper {
	if obs == nil {
		return base
	}
	return &observing{base: base, obs: obs}
}

type observing struct {
	base http.RoundTripper
	obs  storage.Observer
}

func (o *observing) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	op := Op(r)
	sent := r.ContentLength
	if sent < 0 {
		sent = 0
	}
	resp, err := o.base.RoundTrip(r)
	if err != nil {
		o.obs(op, "error", sent, 0, time.Since(start))
		return nil, err
	}
	result := "ok"
	if resp.StatusCode >= 300 {
		result = fmt.Sprint(resp.StatusCode)
	}
	resp.Body = &countingBody{rc: resp.Body, done: func(n int64) {
		o.obs(op, result, sent, n, time.Since(start))
	}}
	return resp, nil
}

// countingBody counts the bytes read and reports once, on Close.
type countingBody struct {
	rc       io.ReadCloser
	n        int64
	reported atomic.Bool
	done     func(n int64)
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *countingBody) Close() error {
	err := b.rc.Close()
	if b.reported.CompareAndSwap(false, true) {
		b.done(b.n)
	}
	return err
}

// Fetch opens the object's bytes from offset to the end.
type Fetch func(ctx context.Context, offset int64) (io.ReadCloser, error)

// NewReader returns a reader over an object of size bytes that fetches
// lazily: nothing is asked until the first Read, Seek only moves the
// offset, and a Read after a Seek elsewhere closes the open response and
// fetches from the new offset. So a whole read is one GET and a ranged
// read one ranged GET.
func NewReader(ctx context.Context, size int64, fetch Fetch) io.ReadSeekCloser {
	return &reader{ctx: ctx, size: size, fetch: fetch}
}

type reader struct {
	ctx    context.Context
	size   int64
	fetch  Fetch
	off    int64         // offset of the next Read
	body   io.ReadCloser // open response, positioned at bodyAt
	bodyAt int64
	closed bool
}

func (r *reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errors.New("read of a closed object reader")
	}
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.body != nil && r.bodyAt != r.off {
		r.body.Close()
		r.body = nil
	}
	if r.body == nil {
		body, err := r.fetch(r.ctx, r.off)
		if err != nil {
			return 0, err
		}
		r.body, r.bodyAt = body, r.off
	}
	if rest := r.size - r.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := r.body.Read(p)
	r.off += int64(n)
	r.bodyAt += int64(n)
	if err == io.EOF && r.off < r.size {
		err = io.ErrUnexpectedEOF // the object is shorter than its size: changed underneath
	}
	return n, err
}

// Prefetch sends the request for the bytes from offset now, so that a
// missing object or an unreachable storage shows before the caller commits
// to an answer (an HTTP status); a Seek to offset and Read then continue
// that response.
func (r *reader) Prefetch(offset int64) error {
	if r.closed {
		return errors.New("prefetch of a closed object reader")
	}
	if r.body != nil && r.bodyAt == offset || offset >= r.size {
		return nil
	}
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
	body, err := r.fetch(r.ctx, offset)
	if err != nil {
		return err
	}
	r.body, r.bodyAt = body, offset
	return nil
}

func (r *reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, fmt.Errorf("seek: invalid whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek: negative offset %d", offset)
	}
	r.off = offset
	return offset, nil
}

func (r *reader) Close() error {
	r.closed = true
	if r.body != nil {
		err := r.body.Close()
		r.body = nil
		return err
	}
	return nil
}

// Options are what an object-storage driver takes besides its URL.
type Options struct {
	// Observer receives one record per request (nil: none).
	Observer storage.Observer
	// Logger logs what the driver does on its own, such as creating the
	// container or bucket (nil: nothing).
	Logger *slog.Logger
}

// Body wraps a response body so that a failure in the middle of the
// stream (a connection reset) becomes the driver's error through fail
// (storage.ErrStorageUnavailable naming the storage and the object).
func Body(rc io.ReadCloser, fail func(error) error) io.ReadCloser {
	return &failingBody{rc: rc, fail: fail}
}

type failingBody struct {
	rc   io.ReadCloser
	fail func(error) error
}

func (b *failingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = b.fail(err)
	}
	return n, err
}

func (b *failingBody) Close() error { return b.rc.Close() }
