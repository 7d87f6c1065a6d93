package s3

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/storage/objhttp"
)

// Open reads the object through ranged GetObjects from the reader's
// offset; with size < 0 it stats the object first.
func (d *Driver) Open(ctx context.Context, name string, size int64) (io.ReadSeekCloser, error) {
	if err := storage.CheckName(name); err != nil {
		return nil, err
	}
	if size < 0 {
		info, err := d.Stat(ctx, name)
		if err != nil {
			return nil, err
		}
		size = info.Size
	}
	fetch := func(ctx context.Context, off int64) (io.ReadCloser, error) {
		out, err := d.client.GetObject(objhttp.WithOp(ctx, "GetObject"), &s3.GetObjectInput{
			Bucket: &d.cfg.Bucket, Key: &name, Range: aws.String(fmt.Sprintf("bytes=%d-", off)),
		})
		if err != nil {
			return nil, d.fail("GetObject", name, err)
		}
		return d.body(out.Body, name), nil
	}
	return objhttp.NewReader(ctx, size, fetch), nil
}

// Get reads a whole object of at most limit bytes in one GetObject (no
// HeadObject first).
func (d *Driver) Get(ctx context.Context, name string, limit int64) ([]byte, error) {
	if err := storage.CheckName(name); err != nil {
		return nil, err
	}
	out, err := d.client.GetObject(objhttp.WithOp(ctx, "GetObject"), &s3.GetObjectInput{Bucket: &d.cfg.Bucket, Key: &name})
	if err != nil {
		return nil, d.fail("GetObject", name, err)
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > limit {
		return nil, fmt.Errorf("%s: read %s: %d bytes, larger than the limit of %d", d, name, n, limit)
	}
	b, err := io.ReadAll(io.LimitReader(d.body(out.Body, name), limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: read %s: larger than the limit of %d bytes", d, name, limit)
	}
	return b, nil
}

// body makes a response body's mid-stream failures the driver's errors.
func (d *Driver) body(rc io.ReadCloser, name string) io.ReadCloser {
	return objhttp.Body(rc, func(err error) error { return d.fail("GetObject", name, err) })
}
