package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
)

// fillBuf is the copy buffer of a fill.
const fillBuf = 256 << 10

// fillState of a fill.
type fillState int

const (
	filling   fillState = iota
	committed           // verified: every byte may be read (the blob is being, or has been, stored)
	failed
)

// fill is one upstream download of one blob, shared by every reader.
type fill struct {
	d    oci.Digest
	mu   sync.Mutex
	cond *sync.Cond

	size    int64 // total from the upstream's Content-Length; -1 unknown
	written int64
	path    string // temp file being written; readers open it
	state   fillState
	err     error
	repos   map[string]bool // repositories to link the blob into
	started chan struct{}   // closed once size and path are known, or on failure
}

func newFill(d oci.Digest, repo string) *fill {
	f := &fill{d: d, size: -1, repos: map[string]bool{repo: true}, started: make(chan struct{})}
	f.cond = sync.NewCond(&f.mu)
	return f
}

// fail ends the fill with err; every reader sees it.
func (f *fill) fail(err error) {
	f.mu.Lock()
	if f.state == filling {
		f.state, f.err = failed, err
	}
	f.mu.Unlock()
	f.cond.Broadcast()
	f.markStarted()
}

func (f *fill) markStarted() {
	select {
	case <-f.started:
	default:
		close(f.started)
	}
}

// errFillFailed is what readers of a failed fill get.
var errFillFailed = errors.New("cache fill failed")

// blobFill returns the fill for d, starting one if none runs, or nil when
// the blob was committed meanwhile (the caller serves it from storage). The
// caller reads through openFill.
func (s *Store) blobFill(t target, repo string, d oci.Digest) *fill {
	s.fillsMu.Lock()
	if f, ok := s.fills[d]; ok {
		f.mu.Lock()
		joinable := f.state != failed // a failed fill awaits removal: start afresh
		if joinable {
			f.repos[repo] = true
		}
		f.mu.Unlock()
		if joinable {
			s.fillsMu.Unlock()
			s.m.coalesced.WithLabelValues("blob").Inc()
			return f
		}
	}
	// No fill in the map: any earlier one has finished. If it committed,
	// the blob is there now; never fetch it twice.
	if _, err := s.blobs.Stat(d); err == nil {
		s.fillsMu.Unlock()
		return nil
	}
	f := newFill(d, repo)
	s.fills[d] = f
	s.fillsMu.Unlock()
	s.m.misses.WithLabelValues("blob").Inc()
	go s.runFill(t, f)
	return f
}

// runFill downloads the blob once. It is detached from every request: a
// client that leaves does not stop it. A stalled upstream (no bytes for
// upstreamTimeout) fails it.
func (s *Store) runFill(t target, f *fill) {
	defer func() {
		s.fillsMu.Lock()
		if s.fills[f.d] == f { // a failed fill may have been replaced already
			delete(s.fills, f.d)
		}
		s.fillsMu.Unlock()
	}()
	// The download is detached from every request. The upstream client
	// bounds it (see Upstream): no answer within upstreamTimeout, or a body
	// that stalls that long, is ErrUpstreamUnavailable; a large blob that
	// keeps flowing may take as long as it needs.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body, size, err := s.up.GetBlob(ctx, t.host, t.repo, f.d)
	if err != nil {
		f.fail(s.upstreamErr(t, string(f.d), err))
		return
	}
	defer body.Close()

	w, err := s.blobs.NewWriter(f.d)
	if err != nil {
		f.fail(s.storageErr(err))
		return
	}
	f.mu.Lock()
	f.size, f.path = size, w.Path()
	f.mu.Unlock()
	f.markStarted()

	// On every failure below, fail comes before Abort: a reader that
	// finds the temp file gone must find the fill failed, not running.
	buf := make([]byte, fillBuf)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				f.fail(s.storageErr(werr))
				w.Abort()
				return
			}
			s.m.upstreamBytes.Add(float64(n))
			f.mu.Lock()
			f.written += int64(n)
			f.mu.Unlock()
			f.cond.Broadcast()
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			rerr = fmt.Errorf("%w: reading the body: %w", ErrUpstreamUnavailable, rerr)
			f.fail(s.upstreamErr(t, string(f.d), rerr))
			w.Abort()
			return
		}
	}
	if size >= 0 && w.Size() != size {
		f.fail(s.upstreamErr(t, string(f.d), fmt.Errorf("body held %d bytes, Content-Length said %d", w.Size(), size)))
		w.Abort()
		return
	}
	if !w.Verified() {
		s.m.verifyFailures.Inc()
		s.log.Error("upstream blob failed verification; nothing cached", "host", t.host, "repo", t.repo, "digest", f.d, "bytes", w.Size())
		f.fail(s.upstreamErr(t, string(f.d), fmt.Errorf("%w: %d bytes", blobstore.ErrDigestMismatch, w.Size())))
		w.Abort()
		return
	}
	// Verified: readers may have the last byte now. Durability (fsync,
	// rename, link) follows while the fill stays registered, so nobody
	// fetches the blob again meanwhile; if it fails, the clients still got
	// verified bytes and the blob is simply not cached.
	f.mu.Lock()
	f.state = committed
	f.size = f.written
	repos := make([]string, 0, len(f.repos))
	for r := range f.repos {
		repos = append(repos, r)
	}
	f.mu.Unlock()
	f.cond.Broadcast()
	if err := w.Commit(repos...); err != nil {
		s.storageErr(err)
		return
	}
	s.kickQuota()
}

// fillReader reads a fill's temp file as it grows. It holds back the last
// byte until the blob is committed, so no client receives a complete body
// before the digest verified.
type fillReader struct {
	f    *fill
	file *os.File
	off  int64
}

// openFill waits (bounded by ctx) until the fill knows its size, then opens
// a reader.
func openFill(ctx context.Context, f *fill) (*fillReader, int64, error) {
	select {
	case <-f.started:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	f.mu.Lock()
	state, err, path, size := f.state, f.err, f.path, f.size
	f.mu.Unlock()
	if state == failed {
		return nil, 0, err
	}
	file, oerr := os.Open(path)
	if oerr != nil {
		// Committed and renamed meanwhile, or failed and removed.
		f.mu.Lock()
		state, err = f.state, f.err
		f.mu.Unlock()
		if state == failed {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("%w: %w", errFillRaced, oerr)
	}
	if size < 0 {
		// No Content-Length: Range and length need the whole blob.
		f.mu.Lock()
		for f.state == filling {
			f.cond.Wait()
		}
		size, state, err = f.size, f.state, f.err
		f.mu.Unlock()
		if state == failed {
			file.Close()
			return nil, 0, err
		}
	}
	return &fillReader{f: f, file: file}, size, nil
}

// errFillRaced means the fill finished between lookup and open; the caller
// retries from local storage.
var errFillRaced = errors.New("fill finished while opening")

// readable blocks until bytes past r.off may be read and returns the end
// of what may: everything written while the fill runs but its last byte,
// everything once it committed. It returns io.EOF at the end of a
// committed blob and errFillFailed when the fill failed.
func (r *fillReader) readable() (int64, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if f.state == failed {
			return 0, fmt.Errorf("%w: %w", errFillFailed, f.err)
		}
		limit := f.written
		if f.state == filling {
			limit-- // the last byte waits for verification
		}
		if r.off < limit {
			return limit, nil
		}
		if f.state == committed {
			return 0, io.EOF
		}
		f.cond.Wait()
	}
}

func (r *fillReader) Read(p []byte) (int, error) {
	limit, err := r.readable()
	if err != nil {
		return 0, err
	}
	if n := limit - r.off; int64(len(p)) > n {
		p = p[:n]
	}
	n, err := r.file.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// WriteTo sends the rest of the blob to w as it becomes readable, with the
// same holding back as Read. Each readable stretch goes to w as an
// io.LimitedReader over the temp file itself, so a w whose ReadFrom takes
// files — an HTTP/1 response on a TCP connection — moves it with sendfile
// from the page cache to the socket, never through user space. Other
// writers get it through one buffer.
func (r *fillReader) WriteTo(w io.Writer) (int64, error) {
	if _, err := r.file.Seek(r.off, io.SeekStart); err != nil {
		return 0, fmt.Errorf("cache fill: %w", err)
	}
	var buf []byte
	if _, ok := w.(io.ReaderFrom); !ok {
		buf = make([]byte, fillBuf)
	}
	var total int64
	for {
		limit, err := r.readable()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		lr := &io.LimitedReader{R: r.file, N: limit - r.off}
		var n int64
		if buf != nil {
			n, err = io.CopyBuffer(w, lr, buf)
		} else {
			n, err = io.Copy(w, lr)
		}
		r.off += n
		total += n
		if err != nil {
			return total, err
		}
		if lr.N > 0 {
			// The temp file holds less than the fill wrote: it was
			// truncated or replaced under us.
			return total, fmt.Errorf("cache fill: %w at offset %d", io.ErrUnexpectedEOF, r.off)
		}
	}
}

func (r *fillReader) Seek(offset int64, whence int) (int64, error) {
	r.f.mu.Lock()
	size := r.f.size
	r.f.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += size
	}
	if offset < 0 {
		return 0, errors.New("seek before start")
	}
	r.off = offset
	return offset, nil
}

func (r *fillReader) Close() error { return r.file.Close() }
