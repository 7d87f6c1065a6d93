package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/storage/drivertest"
	"github.com/airlockdev/airlock/internal/testkit/versitygwtest"
)

var ctx = context.Background()

// startGateway runs versitygw and puts its credentials where the SDK's
// chain finds them (the environment).
func startGateway(t testing.TB) *versitygwtest.Gateway {
	g := versitygwtest.Start(t)
	g.SetEnv(t)
	return g
}

func open(t testing.TB, rawURL string, opts Options) *Driver {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(ctx, u, opts)
	if err != nil {
		t.Fatalf("Open(%s) = %v", rawURL, err)
	}
	return d
}

func TestDriver(t *testing.T) {
	g := startGateway(t)
	drivertest.Run(t, func(t *testing.T) storage.Driver {
		return open(t, g.URL(g.NewBucket(t)), Options{})
	})
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		url     string
		want    config
		str     string
		wantErr string
	}{
		{url: "s3://bucket?region=eu-west-1", want: config{Bucket: "bucket", Region: "eu-west-1"}, str: "s3://bucket"},
		{url: "s3://my.bucket-1", want: config{Bucket: "my.bucket-1"}, str: "s3://my.bucket-1"},
		{
			url:  "s3://b01?region=us-east-1&endpoint=http://127.0.0.1:7070&create=true",
			want: config{Bucket: "b01", Region: "us-east-1", Endpoint: "http://127.0.0.1:7070", Create: true},
			str:  "s3://b01?endpoint=http://127.0.0.1:7070",
		},
		{url: "s3://b01?endpoint=https://minio.internal/", want: config{Bucket: "b01", Endpoint: "https://minio.internal"}, str: "s3://b01?endpoint=https://minio.internal"},
		{url: "s3://b01?create=false", want: config{Bucket: "b01"}, str: "s3://b01"},
		{url: "file:///var/lib/airlock", wantErr: "scheme"},
		{url: "s3://key:secret@bucket", wantErr: "credentials do not belong"},
		{url: "s3://bucket/sub/dir", wantErr: "no path"},
		{url: "s3://Bucket_Upper", wantErr: "not an S3 bucket name"},
		{url: "s3://ab", wantErr: "not an S3 bucket name"},
		{url: "s3://bucket?regoin=x", wantErr: `unknown parameter "regoin" (accepted: region, endpoint, create)`},
		{url: "s3://bucket?region=", wantErr: "region is empty"},
		{url: "s3://bucket?region=a&region=b", wantErr: "given 2 times"},
		{url: "s3://bucket?endpoint=127.0.0.1:7070", wantErr: "endpoint"},
		{url: "s3://bucket?endpoint=ftp://host", wantErr: "endpoint"},
		{url: "s3://bucket?endpoint=http://k:s@host", wantErr: "credentials do not belong"},
		{url: "s3://bucket?endpoint=http://host/path", wantErr: "has a path"},
		{url: "s3://bucket?create=yes", wantErr: "want true or false"},
	} {
		t.Run(c.url, func(t *testing.T) {
			u, err := url.Parse(c.url)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseURL(u)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("parseURL(%s) = %+v, %v, want an error containing %q", c.url, got, err, c.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("parseURL(%s) error %q shows the secret", c.url, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("parseURL(%s) = %+v, %v, want %+v", c.url, got, err, c.want)
			}
			if got.String() != c.str {
				t.Errorf("String() = %q, want %q", got.String(), c.str)
			}
		})
	}
}

func TestMissingBucket(t *testing.T) {
	g := startGateway(t)
	u, _ := url.Parse(strings.Replace(g.URL("absent"), "&create=true", "", 1))
	_, err := Open(ctx, u, Options{})
	if err == nil || !strings.Contains(err.Error(), `"absent"`) || !strings.Contains(err.Error(), "create=true") {
		t.Fatalf("Open(missing bucket) = %v, want an error naming the bucket and ?create=true", err)
	}
	d := open(t, g.URL("absent"), Options{})
	if err := d.Ping(ctx); err != nil {
		t.Fatalf("Ping after Open with create=true = %v, want the bucket created", err)
	}
	// A second Open finds it.
	open(t, g.URL("absent"), Options{})
}

func TestStorageDown(t *testing.T) {
	g := startGateway(t)
	d := open(t, g.URL(g.NewBucket(t)), Options{})
	if err := d.Put(ctx, "x/before", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	g.Stop()

	storageName := d.String()
	checkDown := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrStorageUnavailable) || !strings.Contains(err.Error(), storageName) {
			t.Errorf("%s with the storage down = %v, want storage.ErrStorageUnavailable naming %s", what, err, storageName)
		}
	}
	_, err := d.Stat(ctx, "x/before")
	checkDown("Stat", err)
	checkDown("Ping", d.Ping(ctx))
	checkDown("Put", d.Put(ctx, "x/y", []byte("z")))
	checkDown("Create", d.Create(ctx, "x/y", []byte("z")))
	checkDown("Delete", d.Delete(ctx, "x/before"))
	checkDown("List", d.List(ctx, "x", func(storage.ObjectInfo) error { return nil }))
	_, err = d.Open(ctx, "x/before", -1)
	checkDown("Open(-1)", err)
	_, err = d.Get(ctx, "x/before", 10)
	checkDown("Get", err)
	r, _ := d.Open(ctx, "x/before", 4)
	_, err = r.Read(make([]byte, 4))
	checkDown("Read", err)
	w, _ := d.NewWriter(ctx, "x/w")
	w.Write([]byte("small"))
	checkDown("small Commit", w.Commit())
	w, _ = d.NewWriter(ctx, "x/w")
	_, err = w.Write(make([]byte, PartSize+1))
	checkDown("large Write", err)
	w.Abort()
	u, _ := url.Parse(g.URL("other"))
	storageName = "s3://other"
	_, err = Open(ctx, u, Options{})
	checkDown("Open", err)

	g.Restart()
	if got := readAll(t, d, "x/before"); string(got) != "kept" {
		t.Errorf("after the storage came back x/before = %q, want %q", got, "kept")
	}
}

func readAll(t *testing.T, d *Driver, name string) []byte {
	t.Helper()
	r, err := d.Open(ctx, name, -1)
	if err != nil {
		t.Fatalf("Open(%s) = %v", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func TestSignedURL(t *testing.T) {
	g := startGateway(t)
	d := open(t, g.URL(g.NewBucket(t)), Options{})
	data := []byte("signed bytes")
	if err := d.Put(ctx, "blobs/signed", data); err != nil {
		t.Fatal(err)
	}
	u, err := d.SignedURL(ctx, "blobs/signed", time.Minute)
	if err != nil {
		t.Fatalf("SignedURL = %v", err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Errorf("GET signed URL = %s %q, want 200 %q", resp.Status, got, data)
	}
	if strings.Contains(u, g.SecretKey) {
		t.Errorf("signed URL %s holds the secret key", u)
	}
}

// recorder is an Observer that keeps the operations.
type recorder struct {
	mu  sync.Mutex
	ops []string
}

func (r *recorder) observe(op, result string, sent, received int64, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op+":"+result)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops = nil
	return ops
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestWriterRequests(t *testing.T) {
	g := startGateway(t)
	rec := &recorder{}
	d := open(t, g.URL(g.NewBucket(t)), Options{Observer: rec.observe})
	rec.take()

	w, _ := d.NewWriter(ctx, "blobs/small")
	for range 4 {
		w.Write(random(1000))
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.take(), []string{"PutObject:ok"}; !slices.Equal(got, want) {
		t.Errorf("small writer requests = %q, want %q", got, want)
	}

	// Exactly one part fits the buffer: still one PutObject.
	w, _ = d.NewWriter(ctx, "blobs/one-part")
	w.Write(random(PartSize))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.take(), []string{"PutObject:ok"}; !slices.Equal(got, want) {
		t.Errorf("writer of exactly %d bytes: requests = %q, want %q", PartSize, got, want)
	}

	data := random(2*PartSize + 5)
	w, _ = d.NewWriter(ctx, "blobs/large")
	w.Write(data)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	want := []string{"CreateMultipartUpload:ok", "UploadPart:ok", "UploadPart:ok", "UploadPart:ok", "CompleteMultipartUpload:ok"}
	if got := rec.take(); !slices.Equal(got, want) {
		t.Errorf("large writer requests = %q, want %q", got, want)
	}
	if got := readAll(t, d, "blobs/large"); !bytes.Equal(got, data) {
		t.Errorf("large object read back differs")
	}
}

func TestAbortedWriterLeavesNothing(t *testing.T) {
	g := startGateway(t)
	bucket := g.NewBucket(t)
	d := open(t, g.URL(bucket), Options{})
	w, _ := d.NewWriter(ctx, "blobs/aborted")
	w.Write(random(2*PartSize + 1))
	if w.(*writer).uploadID == nil {
		t.Fatal("a writer of more than one part has no multipart upload")
	}
	w.Abort()
	ups, err := g.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("ListMultipartUploads after Abort = %d uploads, want none", len(ups.Uploads))
	}
	if _, err := d.Stat(ctx, "blobs/aborted"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(aborted) = %v, want fs.ErrNotExist", err)
	}
	n := 0
	d.List(ctx, "", func(storage.ObjectInfo) error { n++; return nil })
	if n != 0 {
		t.Errorf("List after an aborted writer = %d objects, want none", n)
	}
}

func TestAbortStaleUploads(t *testing.T) {
	g := startGateway(t)
	bucket := g.NewBucket(t)
	d := open(t, g.URL(bucket), Options{})
	// A writer that crashed: its multipart upload is never completed.
	w, _ := d.NewWriter(ctx, "blobs/crashed")
	w.Write(random(PartSize + 1))
	w.(*writer).wg.Wait()
	if n, err := d.AbortStaleUploads(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("AbortStaleUploads(an hour ago) = %d, %v, want 0 (the upload is newer)", n, err)
	}
	if n, err := d.AbortStaleUploads(ctx, time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Errorf("AbortStaleUploads(now) = %d, %v, want 1", n, err)
	}
	ups, err := g.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil || len(ups.Uploads) != 0 {
		t.Errorf("ListMultipartUploads after AbortStaleUploads = %v, %v, want none", ups.Uploads, err)
	}
	if _, err := d.Stat(ctx, "blobs/crashed"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(crashed) = %v, want fs.ErrNotExist", err)
	}
}

func TestGet(t *testing.T) {
	g := startGateway(t)
	rec := &recorder{}
	d := open(t, g.URL(g.NewBucket(t)), Options{Observer: rec.observe})
	data := []byte("small object")
	if err := d.Put(ctx, "obj", data); err != nil {
		t.Fatal(err)
	}
	rec.take()
	got, err := storage.ReadSmall(ctx, d, "obj", int64(len(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("ReadSmall = %q, %v, want %q", got, err, data)
	}
	if ops, want := rec.take(), []string{"GetObject:ok"}; !slices.Equal(ops, want) {
		t.Errorf("ReadSmall sent %q, want %q", ops, want)
	}
	if _, err := d.Get(ctx, "obj", int64(len(data)-1)); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("Get over the limit = %v, want an error", err)
	}
	if _, err := d.Get(ctx, "missing", 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get(missing) = %v, want fs.ErrNotExist", err)
	}
}
