package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// fillReader reads a fill's temp file as it grows. What it may hand out
// depends on what its consumer promises, because only a response that
// includes the blob's last byte can be cut before its end when the digest
// does not verify:
//
//   - By default Read returns nothing before the digest verified: a consumer
//     that stops short of the end (a bounded Range) only ever sends
//     verified bytes. It may wait in Verified first, bounded by its context,
//     and answer an error instead of a response when the fill fails.
//   - After StreamToEnd, and always in WriteTo, bytes go out as they arrive
//     but the last one is held until the digest verified; on a mismatch the
//     read fails and the consumer aborts its response, so no client ever
//     receives a complete, clean body of bad bytes.
type fillReader struct {
	f      *fill
	file   *os.File
	off    int64
	stream bool // StreamToEnd was called: unverified bytes but the last may be read
	closed bool // Close was called (the fill's reader count is down)
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
		return nil, 0, fmt.Errorf("%w: %w", errReadLocal, oerr)
	}
	r := &fillReader{f: f, file: file}
	f.mu.Lock()
	f.readers++
	f.mu.Unlock()
	if size < 0 {
		// No Content-Length: Range and length need the whole blob.
		if err := r.Verified(ctx); err != nil {
			r.Close()
			return nil, 0, err
		}
		f.mu.Lock()
		size = f.size
		f.mu.Unlock()
	}
	return r, size, nil
}

// Verified blocks until the fill has verified the blob's digest (nil) or
// failed (its error, wrapping errFillFailed and the fill's reason), or ctx
// ends. Afterwards every byte of a verified blob reads at once.
func (r *fillReader) Verified(ctx context.Context) error {
	select {
	case <-r.f.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	if r.f.state == failed {
		return fmt.Errorf("%w: %w", errFillFailed, r.f.err)
	}
	return nil
}

// StreamToEnd lets Read return bytes before the digest verified, all but
// the blob's last one. The caller promises that what it reads goes into
// one response that includes that last byte, and that it aborts that
// response (no clean end) when a read fails.
func (r *fillReader) StreamToEnd() { r.stream = true }

// readable blocks until bytes past r.off may be read and returns the end
// of what may: while the fill runs, nothing, or for a streaming reader
// everything written but the blob's last byte; everything once the digest
// verified. It returns io.EOF at the end of a verified blob and
// errFillFailed when the fill failed.
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
			if r.stream {
				limit-- // the last byte waits for verification
			} else {
				limit = 0 // unverified bytes go only into a response that can be cut
			}
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

// WriteTo sends the rest of the blob to w as it becomes readable: it always
// reads to the end, so it streams like Read after StreamToEnd, the last
// byte held until the digest verified. Its caller aborts the response when
// it returns an error. Each readable stretch goes to w as an
// io.LimitedReader over the temp file itself, so a w whose ReadFrom takes
// files — an HTTP/1 response on a TCP connection — moves it with sendfile
// from the page cache to the socket, never through user space. Other
// writers get it through one buffer.
func (r *fillReader) WriteTo(w io.Writer) (int64, error) {
	r.stream = true
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

func (r *fillReader) Close() error {
	if !r.closed {
		r.closed = true
		r.f.mu.Lock()
		r.f.readers--
		r.f.mu.Unlock()
	}
	return r.file.Close()
}
