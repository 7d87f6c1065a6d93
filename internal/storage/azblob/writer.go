package azblob

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/storage/objhttp"
)

// NewWriter starts a writer of name; see the package comment for how it
// writes.
func (d *Driver) NewWriter(ctx context.Context, name string) (storage.ObjectWriter, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	var id [12]byte
	rand.Read(id[:])
	ctx, cancel := context.WithCancel(ctx)
	return &writer{
		d: d, ctx: ctx, cancel: cancel, name: name,
		blob:   d.container.NewBlockBlobClient(name),
		prefix: hex.EncodeToString(id[:]),
		buf:    d.getBuf(),
		slots:  make(chan struct{}, d.inFlight),
	}, nil
}

// writer fills buf; a full buf is staged in the background as one block.
type writer struct {
	d      *Driver
	ctx    context.Context // cancelled by Abort and after Commit
	cancel context.CancelFunc
	name   string
	blob   *blockblob.Client
	prefix string   // random, unique to this writer
	ids    []string // base64 block IDs staged or being staged, in order
	buf    *[]byte  // the block being filled; nil when finished
	slots  chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	stageErr error // first staging failure
	finished error // why Write and Commit are refused, once finished
}

func (w *writer) Write(p []byte) (int, error) {
	if err := w.refused(); err != nil {
		return 0, err
	}
	n := 0
	for len(p) > 0 {
		// A full buffer is staged only when more bytes come, so an object
		// of exactly one block is still one Put Blob.
		if len(*w.buf) == cap(*w.buf) {
			if err := w.stage(); err != nil {
				return n, err
			}
		}
		b := *w.buf
		k := min(len(p), cap(b)-len(b))
		*w.buf = append(b, p[:k]...)
		n, p = n+k, p[k:]
	}
	return n, nil
}

// refused is why the writer takes no more bytes: finished, or a block
// failed to stage.
func (w *writer) refused() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished != nil {
		return w.finished
	}
	return w.stageErr
}

// stage sends buf as the next block once one of the in-flight slots is
// free, and starts a new buf.
func (w *writer) stage() error {
	select {
	case w.slots <- struct{}{}:
	case <-w.ctx.Done():
		return fmt.Errorf("%s: write %s: %w", w.d.name, w.name, w.ctx.Err())
	}
	if err := w.refused(); err != nil {
		<-w.slots
		return err
	}
	// Every ID has the same length: 24 hex digits, '-', 8 digits.
	id := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%08d", w.prefix, len(w.ids)))
	w.ids = append(w.ids, id)
	buf := w.buf
	w.buf = w.d.getBuf()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer func() { <-w.slots }()
		defer w.d.putBuf(buf)
		_, err := w.blob.StageBlock(objhttp.WithOp(w.ctx, "PutBlock"), id, readSeekCloser(*buf), nil)
		if err != nil {
			w.mu.Lock()
			if w.stageErr == nil {
				w.stageErr = w.d.fail("stage block of", w.name, err)
			}
			w.mu.Unlock()
		}
	}()
	return nil
}

// Commit is one Put Blob when everything fits in one block, else it
// stages the rest and commits the block list.
func (w *writer) Commit() error {
	if err := w.refused(); err != nil {
		w.Abort()
		return err
	}
	defer w.finish(errors.New("writer already committed"))
	ctx := w.ctx
	if len(w.ids) == 0 {
		_, err := w.blob.Upload(objhttp.WithOp(ctx, "PutBlob"), readSeekCloser(*w.buf), nil)
		if err != nil {
			return w.d.fail("put", w.name, err)
		}
		return nil
	}
	if len(*w.buf) > 0 {
		if err := w.stage(); err != nil {
			return err
		}
	}
	w.wg.Wait()
	if err := w.refused(); err != nil {
		return err
	}
	_, err := w.blob.CommitBlockList(objhttp.WithOp(ctx, "PutBlockList"), w.ids, nil)
	if bloberror.HasCode(err, bloberror.InvalidBlockList) {
		// Another writer committed this name first, which discarded our
		// uncommitted blocks.
		return fmt.Errorf("%s: commit %s: %w", w.d.name, w.name, storage.ErrCommitRaced)
	}
	if err != nil {
		return w.d.fail("commit", w.name, err)
	}
	return nil
}

// Abort stops staging and waits for the blocks in flight; what was staged
// stays uncommitted (see the package comment).
func (w *writer) Abort() {
	w.finish(errors.New("writer aborted"))
}

// finish cancels staging, waits for it, returns the buffers, and makes
// later calls fail with why; only the first call counts.
func (w *writer) finish(why error) {
	w.mu.Lock()
	if w.finished != nil {
		w.mu.Unlock()
		return
	}
	w.finished = fmt.Errorf("%s: %s: %w", w.d.name, w.name, why)
	w.mu.Unlock()
	w.cancel()
	w.wg.Wait()
	if w.buf != nil {
		w.d.putBuf(w.buf)
		w.buf = nil
	}
}

func (d *Driver) getBuf() *[]byte {
	b := d.pool.Get().(*[]byte)
	*b = (*b)[:0]
	return b
}

func (d *Driver) putBuf(b *[]byte) { d.pool.Put(b) }
