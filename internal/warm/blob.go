package warm

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/ociclient"
)

// errDigest: fetched content does not match its digest.
var errDigest = errors.New("content does not match its digest")

// registryError shows a registry's error response the way warm reports
// it: the status and the registry's own code and message, without the URL.
type registryError struct{ *ociclient.ResponseError }

func (e registryError) Error() string { return e.RegistryMessage() }
func (e registryError) Unwrap() error { return e.ResponseError }

// brief shortens the client's errors to warm's wording.
func brief(err error) error {
	var re *ociclient.ResponseError
	var de *ociclient.DigestError
	switch {
	case errors.As(err, &re):
		return registryError{re}
	case errors.As(err, &de):
		return errDigest
	}
	return err
}

// blob fetches one blob (once per run) and verifies it.
func (w *warmer) blob(ctx context.Context, ref Ref, b oci.Descriptor) (int64, bool, error) {
	w.mu.Lock()
	bo, shared := w.seen[b.Digest]
	if !shared {
		bo = &blobOnce{}
		w.seen[b.Digest] = bo
	}
	w.mu.Unlock()
	bo.once.Do(func() {
		select {
		case w.sem <- struct{}{}:
		case <-ctx.Done():
			bo.err = ctx.Err()
			return
		}
		defer func() { <-w.sem }()
		bo.n, bo.err = w.fetchBlob(ctx, ref, b)
	})
	ev := Event{Image: ref.Raw, Blob: b.Digest, Done: bo.n, Total: b.Size, Phase: "blob-done", Shared: shared, Err: bo.err}
	w.opt.Progress(ev)
	return bo.n, shared, bo.err
}

func (w *warmer) fetchBlob(ctx context.Context, ref Ref, b oci.Descriptor) (int64, error) {
	resp, err := w.client(ref).Blob(ctx, ref.Repo, b.Digest)
	if err != nil {
		return 0, brief(err)
	}
	defer resp.Body.Close()
	v := oci.NewVerifier(b.Digest)
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			v.Write(buf[:k])
			n += int64(k)
			w.opt.Progress(Event{Image: ref.Raw, Blob: b.Digest, Done: n, Total: b.Size, Phase: "blob"})
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, fmt.Errorf("after %d bytes: %w", n, rerr)
		}
	}
	if !v.Verified() {
		return n, errDigest
	}
	return n, nil
}
