package versitygwtest_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlockdev/airlock/internal/testkit/versitygwtest"
)

func TestStartStopRestart(t *testing.T) {
	g := versitygwtest.Start(t)
	ctx := context.Background()
	bucket := g.NewBucket(t)
	if _, err := g.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("HeadBucket(%s) = %v, want the new bucket", bucket, err)
	}

	g.Stop()
	if resp, err := http.Get(g.Endpoint); err == nil {
		resp.Body.Close()
		t.Fatalf("GET %s after Stop answered %s, want connection refused", g.Endpoint, resp.Status)
	}

	g.Restart()
	if _, err := g.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("HeadBucket(%s) after Restart = %v, want the bucket kept", bucket, err)
	}
	if got, want := g.URL("b"), "s3://b?region=us-east-1&endpoint="+g.Endpoint+"&create=true"; got != want {
		t.Errorf("URL(b) = %q, want %q", got, want)
	}
}
