package azblob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/storage/objhttp"
)

var notExist = fs.ErrNotExist

// checkName refuses names that are not clean and relative.
func checkName(name string) error {
	if err := storage.CheckName(name); err != nil {
		return err
	}
	if len(name) > 1024 {
		return fmt.Errorf("object name %.40q…: longer than Azure's 1024 characters", name)
	}
	return nil
}

// Stat reads the blob's properties.
func (d *Driver) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if err := checkName(name); err != nil {
		return storage.ObjectInfo{}, err
	}
	props, err := d.container.NewBlobClient(name).GetProperties(objhttp.WithOp(ctx, "GetBlobProperties"), nil)
	if err != nil {
		return storage.ObjectInfo{}, d.fail("stat", name, err)
	}
	return storage.ObjectInfo{Name: name, Size: deref(props.ContentLength), ModTime: deref(props.LastModified)}, nil
}

// Open returns a lazy reader: each contiguous read is one ranged Get Blob.
// Reads after the first are pinned to the first read's ETag, so an object
// replaced in between fails the read instead of mixing two versions.
func (d *Driver) Open(ctx context.Context, name string, size int64) (io.ReadSeekCloser, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if size < 0 {
		info, err := d.Stat(ctx, name)
		if err != nil {
			return nil, err
		}
		size = info.Size
	}
	b := d.container.NewBlobClient(name)
	var etag *azcore.ETag
	fetch := func(ctx context.Context, offset int64) (io.ReadCloser, error) {
		opts := &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: offset}}
		if etag != nil {
			opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: etag}}
		}
		resp, err := b.DownloadStream(objhttp.WithOp(ctx, "GetBlob"), opts)
		if err != nil {
			if bloberrorStatus(err) == http.StatusPreconditionFailed {
				return nil, fmt.Errorf("%s: read %s: the object changed while being read", d.name, name)
			}
			return nil, d.fail("read", name, err)
		}
		etag = resp.ETag
		return d.body(resp.Body, name), nil
	}
	return objhttp.NewReader(ctx, size, fetch), nil
}

// Get reads a whole object of at most limit bytes with one Get Blob.
func (d *Driver) Get(ctx context.Context, name string, limit int64) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	resp, err := d.container.NewBlobClient(name).DownloadStream(objhttp.WithOp(ctx, "GetBlob"), nil)
	if err != nil {
		return nil, d.fail("read", name, err)
	}
	defer resp.Body.Close()
	if n := deref(resp.ContentLength); n > limit {
		return nil, fmt.Errorf("%s: read %s: %d bytes, larger than the limit of %d", d.name, name, n, limit)
	}
	b, err := io.ReadAll(io.LimitReader(d.body(resp.Body, name), limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: read %s: larger than the limit of %d bytes", d.name, name, limit)
	}
	return b, nil
}

// Put replaces the blob with one Put Blob.
func (d *Driver) Put(ctx context.Context, name string, data []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	_, err := d.container.NewBlockBlobClient(name).Upload(objhttp.WithOp(ctx, "PutBlob"), readSeekCloser(data), nil)
	if err != nil {
		return d.fail("put", name, err)
	}
	return nil
}

// Create is a Put Blob with If-None-Match: *.
func (d *Driver) Create(ctx context.Context, name string, data []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	_, err := d.container.NewBlockBlobClient(name).Upload(objhttp.WithOp(ctx, "PutBlob"), readSeekCloser(data), &blockblob.UploadOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
	})
	if s := bloberrorStatus(err); s == http.StatusConflict || s == http.StatusPreconditionFailed {
		return fmt.Errorf("%s: create %s: %w", d.name, name, fs.ErrExist)
	}
	if err != nil {
		return d.fail("create", name, err)
	}
	return nil
}

// Delete deletes the blob.
func (d *Driver) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if _, err := d.container.NewBlobClient(name).Delete(objhttp.WithOp(ctx, "DeleteBlob"), nil); err != nil {
		return d.fail("delete", name, err)
	}
	return nil
}

// List lists the blobs whose names start with prefix + "/" (every blob
// for ""), a page of up to 5000 per request.
func (d *Driver) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if prefix != "" {
		if err := checkName(prefix); err != nil {
			return err
		}
		prefix += "/"
	}
	pager := d.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	for pager.More() {
		page, err := pager.NextPage(objhttp.WithOp(ctx, "ListBlobs"))
		if err != nil {
			return d.fail("list", prefix, err)
		}
		for _, item := range page.Segment.BlobItems {
			info := storage.ObjectInfo{Name: deref(item.Name)}
			if p := item.Properties; p != nil {
				info.Size, info.ModTime = deref(p.ContentLength), deref(p.LastModified)
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// bloberrorStatus is the HTTP status of an Azure error response, 0 for
// any other error.
func bloberrorStatus(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func readSeekCloser(b []byte) io.ReadSeekCloser {
	return streaming.NopCloser(bytes.NewReader(b))
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// body makes a response body's mid-stream failures the driver's errors.
func (d *Driver) body(rc io.ReadCloser, name string) io.ReadCloser {
	return objhttp.Body(rc, func(err error) error { return d.fail("read", name, err) })
}
