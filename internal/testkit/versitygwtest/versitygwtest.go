// Package versitygwtest runs versitygw, an S3 gateway, on loopback for
// tests of the S3 storage driver. Only tests import it.
//
// The binary is $AIRLOCK_TOOLS/bin/versitygw (AIRLOCK_TOOLS defaults to
// /opt/airlock-tools), installed by scripts/tools.sh. Without it Start
// skips the test, or fails it when AIRLOCK_REQUIRE_TOOLS=1.
package versitygwtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlockdev/airlock/internal/testkit/porttest"
)

// Region is the region the gateway answers for.
const Region = "us-east-1"

// startTimeout bounds the wait for a starting gateway to answer.
const startTimeout = 15 * time.Second

// Gateway is a running versitygw with the posix backend.
type Gateway struct {
	// Endpoint is http://127.0.0.1:PORT.
	Endpoint string
	// AccessKey and SecretKey are the root account's credentials.
	AccessKey, SecretKey string

	bin, addr, dir string
	t              testing.TB

	mu  sync.Mutex
	cmd *exec.Cmd
	out *syncBuffer
}

var buckets atomic.Int64

// Binary is the versitygw path: $AIRLOCK_TOOLS/bin/versitygw, with
// AIRLOCK_TOOLS defaulting to /opt/airlock-tools.
func Binary() string {
	tools := os.Getenv("AIRLOCK_TOOLS")
	if tools == "" {
		tools = "/opt/airlock-tools"
	}
	return filepath.Join(tools, "bin", "versitygw")
}

// Start runs versitygw on a free loopback port with its data in a
// t.TempDir, waits until it answers, and stops it when the test ends.
func Start(t testing.TB) *Gateway {
	t.Helper()
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		const hint = "versitygw not installed: run scripts/tools.sh"
		if os.Getenv("AIRLOCK_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s (%v)", hint, err)
		}
		t.Skip(hint)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := porttest.FreeAddr(t)
	g := &Gateway{
		Endpoint:  "http://" + addr,
		AccessKey: "airlock-test",
		SecretKey: "airlock-test-secret",
		bin:       bin, addr: addr, dir: dir, t: t,
	}
	g.start()
	t.Cleanup(g.Stop)
	return g
}

func (g *Gateway) start() {
	g.t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(g.bin, "--port", g.addr, "--quiet", "posix", filepath.Join(g.dir, "data"))
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+g.AccessKey, "ROOT_SECRET_ACCESS_KEY="+g.SecretKey, "VGW_REGION="+Region)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		g.t.Fatalf("start versitygw: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	g.mu.Lock()
	g.cmd, g.out = cmd, out
	g.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		// Any HTTP answer (403 for an anonymous GET) means it serves.
		resp, err := http.Get(g.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-exited:
			g.t.Fatalf("versitygw exited at start: %s", out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			g.Stop()
			g.t.Fatalf("versitygw did not answer on %s within %v: %v\n%s", g.addr, startTimeout, err, out)
		}
	}
}

// Stop kills the gateway (by its PID) and waits until its port refuses
// connections. Stopping a stopped gateway does nothing.
func (g *Gateway) Stop() {
	g.mu.Lock()
	cmd := g.cmd
	g.cmd = nil
	g.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	for range 200 {
		c, err := net.DialTimeout("tcp", g.addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart starts the gateway again on the same port and data directory,
// after Stop.
func (g *Gateway) Restart() {
	g.t.Helper()
	g.Stop()
	g.start()
}

// Env is the environment a child process (or the AWS SDK) needs to reach
// the gateway: the root credentials and the region.
func (g *Gateway) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + g.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + g.SecretKey,
		"AWS_REGION=" + Region,
		"AWS_EC2_METADATA_DISABLED=true", // tests never ask an instance metadata service
	}
}

// SetEnv sets Env in the test's own environment (t.Setenv), where the S3
// driver's credential chain finds it.
func (g *Gateway) SetEnv(t testing.TB) {
	for _, kv := range g.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// URL is airlock's storage URL for bucket on this gateway, with
// create=true.
func (g *Gateway) URL(bucket string) string {
	return fmt.Sprintf("s3://%s?region=%s&endpoint=%s&create=true", bucket, Region, g.Endpoint)
}

// Client is an S3 client of the gateway with the root credentials.
func (g *Gateway) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(g.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(g.AccessKey, g.SecretKey, ""),
	})
}

// NewBucket creates an empty bucket with a name no other test of this
// process uses, and returns its name.
func (g *Gateway) NewBucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test-%d-%d", os.Getpid(), buckets.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := g.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("create bucket %s on versitygw: %v", name, err)
	}
	return name
}

// syncBuffer collects the gateway's output for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
