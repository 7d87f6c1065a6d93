// Package s3 is the storage.Driver on Amazon S3 and S3-compatible servers
// (MinIO, versitygw, Ceph RGW): one object per name in one bucket.
//
// Storage URL: s3://BUCKET?region=REGION for AWS, and
// s3://BUCKET?region=REGION&endpoint=http://HOST:PORT for an S3-compatible
// server (path-style addressing); &create=true creates a missing bucket.
// Credentials come from the AWS SDK's usual chain (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, a shared profile, an instance or task role),
// never from the URL.
//
// Requests go through objhttp.Client (fail-fast timeouts, every request
// reported to the Observer) with at most three attempts, so an unreachable
// storage fails in seconds with an error wrapping
// storage.ErrStorageUnavailable.
//
// Writes: Put and Create are one PutObject (Create with If-None-Match: *).
// An ObjectWriter buffers up to one part (8 MiB); a Commit before that is
// one PutObject, otherwise the writer runs a multipart upload on the final
// name with at most two parts in flight, and Commit completes it. Nothing
// is visible before the PutObject or CompleteMultipartUpload succeeds. A
// crash leaves an incomplete multipart upload, invisible but billed:
// AbortStaleUploads reclaims them.
//
// A Driver is safe for concurrent use; an ObjectWriter belongs to one
// goroutine.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/storage/objhttp"
)

// Options are a Driver's dependencies.
type Options = objhttp.Options

// Writer tuning, measured in docs/dependencies.md ("S3 client").
const (
	// PartSize is the writer's buffer and multipart part size. S3's parts
	// are at least 5 MiB (except the last) and at most 10,000 per
	// upload, so 8 MiB parts hold objects up to 78 GiB.
	PartSize = 8 << 20
	// PartsInFlight is how many parts one writer uploads at once.
	PartsInFlight = 2
)

// Retry bounds: few attempts, short backoff, so an unreachable storage
// fails within seconds instead of the SDK's default patience.
const (
	maxAttempts = 3
	maxBackoff  = 500 * time.Millisecond
)

// Driver stores objects in one S3 bucket.
type Driver struct {
	cfg    config
	client *s3.Client
	log    *slog.Logger

	partSize int // PartSize; tests and benchmarks change it
	inFlight int // PartsInFlight; likewise
	bufs     sync.Pool
}

var (
	_ storage.Driver = (*Driver)(nil)
	_ storage.Pinger = (*Driver)(nil)
	_ storage.Signer = (*Driver)(nil)
	_ storage.Getter = (*Driver)(nil)
)

// Open connects to the bucket u names and checks it exists (creating it
// when u says create=true). When the storage cannot be reached it returns
// the driver together with an error wrapping storage.ErrStorageUnavailable:
// the caller may keep the driver, which works once the storage answers.
func Open(ctx context.Context, u *url.URL, opts Options) (*Driver, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	d, err := newDriver(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	if err := d.ensureBucket(ctx); err != nil {
		if errors.Is(err, storage.ErrStorageUnavailable) {
			// Usable once the storage answers: Ping (the /readyz check)
			// then also creates a missing bucket when create=true.
			return d, err
		}
		return nil, err
	}
	return d, nil
}

func newDriver(ctx context.Context, cfg config, opts Options) (*Driver, error) {
	load := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = maxAttempts
				o.MaxBackoff = maxBackoff
				o.RateLimiter = ratelimit.None // a down storage must not drain a shared retry budget
			})
		}),
	}
	if cfg.Region != "" {
		load = append(load, awsconfig.WithRegion(cfg.Region))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("%s: load AWS configuration: %w", cfg, err)
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("%s: no region: add ?region=REGION to the storage URL (or set AWS_REGION)", cfg)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		// Set here, not in the config: the config would add
		// AWS_CA_BUNDLE to the transport, which objhttp builds. Custom
		// CAs come through SSL_CERT_FILE or the system store.
		o.HTTPClient = objhttp.Client(opts.Observer)
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.UsePathStyle = true
		}
		// The writer hands whole in-memory parts to the SDK; checksums
		// only where S3 requires them keep each part one plain signed
		// request (no aws-chunked trailers), which every S3-compatible
		// server accepts. The registry verifies digests itself.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Driver{cfg: cfg, client: client, log: log, partSize: PartSize, inFlight: PartsInFlight}, nil
}

// ensureBucket checks the bucket exists, creating it when the URL asks.
func (d *Driver) ensureBucket(ctx context.Context) error {
	err := d.headBucket(ctx)
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if !d.cfg.Create {
		return fmt.Errorf("%s: bucket %q does not exist: create it, or add ?create=true to the storage URL to have airlock create it", d, d.cfg.Bucket)
	}
	_, err = d.client.CreateBucket(objhttp.WithOp(ctx, "CreateBucket"), &s3.CreateBucketInput{Bucket: &d.cfg.Bucket})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return d.fail("CreateBucket", d.cfg.Bucket, err)
	}
	d.log.Info("created bucket", "storage", d.String())
	return nil
}

func (d *Driver) headBucket(ctx context.Context) error {
	_, err := d.client.HeadBucket(objhttp.WithOp(ctx, "HeadBucket"), &s3.HeadBucketInput{Bucket: &d.cfg.Bucket})
	return d.fail("HeadBucket", d.cfg.Bucket, err)
}

// Ping checks the bucket is reachable, present and readable with the
// credentials given: one HeadBucket (with create=true, a missing bucket is
// created).
func (d *Driver) Ping(ctx context.Context) error {
	if d.cfg.Create {
		return d.ensureBucket(ctx)
	}
	err := d.headBucket(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: bucket %q does not exist: %w", d, d.cfg.Bucket, err)
	}
	return err
}

// String is s3://BUCKET, with ?endpoint=… for an S3-compatible server.
func (d *Driver) String() string { return d.cfg.String() }

// Stat is one HeadObject.
func (d *Driver) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if err := storage.CheckName(name); err != nil {
		return storage.ObjectInfo{}, err
	}
	out, err := d.client.HeadObject(objhttp.WithOp(ctx, "HeadObject"), &s3.HeadObjectInput{Bucket: &d.cfg.Bucket, Key: &name})
	if err != nil {
		return storage.ObjectInfo{}, d.fail("HeadObject", name, err)
	}
	return storage.ObjectInfo{Name: name, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// Put is one PutObject, which S3 makes visible whole or not at all.
func (d *Driver) Put(ctx context.Context, name string, data []byte) error {
	if err := storage.CheckName(name); err != nil {
		return err
	}
	return d.putObject(ctx, "PutObject", name, data, nil)
}

// Create is one PutObject with If-None-Match: *: the storage refuses it
// (412, or 409 ConditionalRequestConflict for a concurrent conditional
// write) when the name exists.
func (d *Driver) Create(ctx context.Context, name string, data []byte) error {
	if err := storage.CheckName(name); err != nil {
		return err
	}
	return d.putObject(ctx, "PutObjectIfNoneMatch", name, data, aws.String("*"))
}

func (d *Driver) putObject(ctx context.Context, op, name string, data []byte, ifNoneMatch *string) error {
	_, err := d.client.PutObject(objhttp.WithOp(ctx, op), &s3.PutObjectInput{
		Bucket:        &d.cfg.Bucket,
		Key:           &name,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		IfNoneMatch:   ifNoneMatch,
	})
	if err != nil && ifNoneMatch != nil {
		if isConditionConflict(err) {
			return fmt.Errorf("%s: create %s: %w", d, name, fs.ErrExist)
		}
	}
	return d.fail(op, name, err)
}

// List lists prefix+"/" (everything for "") with ListObjectsV2, page by
// page.
func (d *Driver) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if prefix != "" {
		if err := storage.CheckName(prefix); err != nil {
			return err
		}
		prefix += "/"
	}
	in := &s3.ListObjectsV2Input{Bucket: &d.cfg.Bucket, Prefix: &prefix}
	pages := s3.NewListObjectsV2Paginator(d.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(objhttp.WithOp(ctx, "ListObjectsV2"))
		if err != nil {
			return d.fail("ListObjectsV2", prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if strings.HasSuffix(key, "/") { // a directory marker, not an object
				continue
			}
			if err := fn(storage.ObjectInfo{Name: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete is HeadObject then DeleteObject: S3 deletes a missing key
// without complaint, and the contract wants fs.ErrNotExist for it. Two
// concurrent Deletes of one object may both succeed.
func (d *Driver) Delete(ctx context.Context, name string) error {
	if _, err := d.Stat(ctx, name); err != nil {
		return err
	}
	_, err := d.client.DeleteObject(objhttp.WithOp(ctx, "DeleteObject"), &s3.DeleteObjectInput{Bucket: &d.cfg.Bucket, Key: &name})
	return d.fail("DeleteObject", name, err)
}

// SignedURL is a presigned GetObject of name, valid for ttl.
func (d *Driver) SignedURL(ctx context.Context, name string, ttl time.Duration) (string, error) {
	if err := storage.CheckName(name); err != nil {
		return "", err
	}
	req, err := s3.NewPresignClient(d.client).PresignGetObject(ctx,
		&s3.GetObjectInput{Bucket: &d.cfg.Bucket, Key: &name}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("%s: presign GetObject %s: %w", d, name, err)
	}
	return req.URL, nil
}

// AbortStaleUploads aborts the multipart uploads initiated before
// olderThan — what writers left behind by a crash — and returns how many
// it aborted. The store's garbage collection calls it with a cutoff well
// past the longest upload (a day).
func (d *Driver) AbortStaleUploads(ctx context.Context, olderThan time.Time) (int, error) {
	aborted := 0
	in := &s3.ListMultipartUploadsInput{Bucket: &d.cfg.Bucket}
	for {
		page, err := d.client.ListMultipartUploads(objhttp.WithOp(ctx, "ListMultipartUploads"), in)
		if err != nil {
			return aborted, d.fail("ListMultipartUploads", "", err)
		}
		for _, up := range page.Uploads {
			if up.Initiated == nil || !up.Initiated.Before(olderThan) {
				continue
			}
			_, err := d.client.AbortMultipartUpload(objhttp.WithOp(ctx, "AbortMultipartUpload"), &s3.AbortMultipartUploadInput{
				Bucket: &d.cfg.Bucket, Key: up.Key, UploadId: up.UploadId,
			})
			if err != nil && !errors.Is(d.fail("AbortMultipartUpload", "", err), fs.ErrNotExist) {
				return aborted, d.fail("AbortMultipartUpload", aws.ToString(up.Key), err)
			}
			if err == nil {
				aborted++
				d.log.Info("aborted stale multipart upload", "storage", d.String(), "object", aws.ToString(up.Key), "initiated", *up.Initiated)
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			return aborted, nil
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}
