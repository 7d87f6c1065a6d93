package s3

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/storage/objhttp"
)

// abortTimeout bounds the AbortMultipartUpload sent when a writer gives
// up, which runs even when the writer's context is cancelled.
const abortTimeout = 30 * time.Second

// writer is an ObjectWriter: it fills buf; a Commit before buf
// overflows is one PutObject, otherwise full buffers become parts of a
// multipart upload on the final name, uploaded in the background.
type writer struct {
	d    *Driver
	ctx  context.Context
	name string
	buf  *[]byte // the part being filled, from d.bufs
	done bool    // committed or aborted

	uploadID *string       // set once the multipart upload is created
	slots    chan struct{} // one token per part in flight
	wg       sync.WaitGroup
	mu       sync.Mutex // guards parts and err, written by part uploads
	parts    []types.CompletedPart
	err      error // first part upload failure
}

// NewWriter starts a writer of name; it sends nothing until the first
// part fills or Commit.
func (d *Driver) NewWriter(ctx context.Context, name string) (storage.ObjectWriter, error) {
	if err := storage.CheckName(name); err != nil {
		return nil, err
	}
	return &writer{d: d, ctx: ctx, name: name, buf: d.getBuf(), slots: make(chan struct{}, d.inFlight)}, nil
}

func (d *Driver) getBuf() *[]byte {
	if b, ok := d.bufs.Get().(*[]byte); ok && cap(*b) == d.partSize {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, d.partSize)
	return &b
}

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("%s: write to %s after Commit or Abort", w.d, w.name)
	}
	n := 0
	for len(p) > 0 {
		b := *w.buf
		if len(b) == cap(b) {
			// Full, and more bytes come: this is a part.
			if err := w.flush(); err != nil {
				return n, err
			}
			b = *w.buf
		}
		c := copy(b[len(b):cap(b)], p)
		*w.buf = b[:len(b)+c]
		p = p[c:]
		n += c
	}
	return n, nil
}

// flush uploads the buffer as the next part in the background, starting
// the multipart upload first if needed, and waits while PartsInFlight
// parts are already in flight.
func (w *writer) flush() error {
	if err := w.partErr(); err != nil {
		return err
	}
	if w.uploadID == nil {
		out, err := w.d.client.CreateMultipartUpload(objhttp.WithOp(w.ctx, "CreateMultipartUpload"),
			&s3.CreateMultipartUploadInput{Bucket: &w.d.cfg.Bucket, Key: &w.name})
		if err != nil {
			return w.d.fail("CreateMultipartUpload", w.name, err)
		}
		w.uploadID = out.UploadId
	}
	w.slots <- struct{}{}
	buf := w.buf
	w.mu.Lock()
	num := int32(len(w.parts) + 1)
	w.parts = append(w.parts, types.CompletedPart{PartNumber: aws.Int32(num)}) // ETag filled in on completion
	w.mu.Unlock()
	w.buf = w.d.getBuf()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer func() { <-w.slots }()
		out, err := w.d.client.UploadPart(objhttp.WithOp(w.ctx, "UploadPart"), &s3.UploadPartInput{
			Bucket: &w.d.cfg.Bucket, Key: &w.name, UploadId: w.uploadID, PartNumber: aws.Int32(num),
			Body: bytes.NewReader(*buf), ContentLength: aws.Int64(int64(len(*buf))),
		})
		if err == nil {
			// Only then: after a failed request the transport may still
			// be reading the body in its own goroutine (http.RoundTripper
			// may close it after returning), so the buffer is left to
			// the garbage collector rather than reused.
			w.d.bufs.Put(buf)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			if w.err == nil {
				w.err = w.d.fail("UploadPart", fmt.Sprintf("%s part %d", w.name, num), err)
			}
			return
		}
		w.parts[num-1].ETag = out.ETag
	}()
	return nil
}

func (w *writer) partErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Commit is one PutObject when everything fit in one buffer, otherwise
// the last part and CompleteMultipartUpload. On failure the writer is
// aborted.
func (w *writer) Commit() error {
	if w.done {
		return fmt.Errorf("%s: commit of %s after Commit or Abort", w.d, w.name)
	}
	if w.uploadID == nil {
		w.done = true
		err := w.d.putObject(w.ctx, "PutObject", w.name, *w.buf, nil)
		if err == nil {
			w.d.bufs.Put(w.buf) // not after a failure: see the part upload in flush
		}
		w.buf = nil
		return err
	}
	if err := w.flush(); err != nil { // the buffer holds at least one byte here
		w.Abort()
		return err
	}
	w.d.bufs.Put(w.buf)
	w.buf = nil
	w.wg.Wait()
	if err := w.partErr(); err != nil {
		w.Abort()
		return err
	}
	w.done = true
	_, err := w.d.client.CompleteMultipartUpload(objhttp.WithOp(w.ctx, "CompleteMultipartUpload"), &s3.CompleteMultipartUploadInput{
		Bucket: &w.d.cfg.Bucket, Key: &w.name, UploadId: w.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
	})
	if err != nil {
		w.abortUpload()
		if isConditionConflict(err) {
			return fmt.Errorf("%s: CompleteMultipartUpload %s: %w: %w", w.d, w.name, storage.ErrCommitRaced, err)
		}
		return w.d.fail("CompleteMultipartUpload", w.name, err)
	}
	return nil
}

// Abort waits for the parts in flight and aborts the multipart upload, so
// the storage keeps none of the bytes.
func (w *writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.wg.Wait()
	if w.buf != nil {
		w.d.bufs.Put(w.buf)
		w.buf = nil
	}
	w.abortUpload()
}

func (w *writer) abortUpload() {
	if w.uploadID == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), abortTimeout)
	defer cancel()
	_, err := w.d.client.AbortMultipartUpload(objhttp.WithOp(ctx, "AbortMultipartUpload"), &s3.AbortMultipartUploadInput{
		Bucket: &w.d.cfg.Bucket, Key: &w.name, UploadId: w.uploadID,
	})
	if err != nil && statusOf(err) != 404 {
		// Left for AbortStaleUploads.
		w.d.log.Warn("abort multipart upload", "storage", w.d.String(), "object", w.name, "error", err)
	}
	w.uploadID = nil
}
