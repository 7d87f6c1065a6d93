//go:build e2e

package upstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/bcrypt"
)

// dockerRegistry is Debian's docker-registry (distribution 2.8) started
// by the test on a free loopback port with its storage in a temp dir.
type dockerRegistry struct {
	addr string // 127.0.0.1:port
	cmd  *exec.Cmd
	log  string
}

// startDockerRegistry writes a config (plus extra YAML, e.g. auth) and
// starts the registry, waiting until /v2/ answers.
func startDockerRegistry(t *testing.T, extra string) *dockerRegistry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("docker-registry is not installed (apt-get install docker-registry): %v", err)
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := fmt.Sprintf(`version: 0.1
log: {level: info, formatter: text}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
  cache: {blobdescriptor: inmemory}
  maintenance: {uploadpurging: {enabled: false}}
http: {addr: %s, headers: {X-Content-Type-Options: [nosniff]}}
health: {storagedriver: {enabled: false}}
%s`, filepath.Join(dir, "data"), addr, extra)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &dockerRegistry{addr: addr, log: filepath.Join(dir, "registry.log")}
	logf, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(bin, "serve", cfgPath)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.stop()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(r.log)
			t.Logf("docker-registry log:\n%s", b)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry on %s did not come up: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills the registry by the PID this test started.
func (r *dockerRegistry) stop() {
	if r.cmd.ProcessState == nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
	}
}

func (r *dockerRegistry) ref(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.addr+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func e2eClient(t *testing.T, r *dockerRegistry, mod func(*Options)) *Client {
	t.Helper()
	opt := Options{
		Endpoints:   map[string]Endpoint{"upstream.e2e": {URL: "http://" + r.addr}},
		Timeout:     5 * time.Second,
		DialContext: loopbackDial,
	}
	if mod != nil {
		mod(&opt)
	}
	c, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkImage fetches an image's manifest by digest and every blob it
// references through c, verifying each against its digest.
func checkImage(t *testing.T, c *Client, repo string, img v1.Image) {
	t.Helper()
	ctx := context.Background()
	dg, _ := img.Digest()
	raw, _ := img.RawManifest()
	m, err := c.GetManifest(ctx, "upstream.e2e", repo, oci.Reference{Digest: oci.Digest(dg.String())})
	if err != nil {
		t.Fatalf("GetManifest(%s@%s) = %v", repo, dg, err)
	}
	if !bytes.Equal(m.Body, raw) || string(m.Descriptor.Digest) != dg.String() {
		t.Fatalf("GetManifest(%s@%s) = %s, %d bytes; want the pushed manifest", repo, dg, m.Descriptor.Digest, len(raw))
	}
	for _, d := range m.Parsed.References() {
		rc, total, err := c.GetBlob(ctx, "upstream.e2e", repo, d.Digest, 0)
		if err != nil {
			t.Fatalf("GetBlob(%s) = %v", d.Digest, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("reading blob %s: %v", d.Digest, err)
		}
		if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); got != string(d.Digest) || n != d.Size || total != d.Size {
			t.Errorf("blob %s: read %d bytes (total %d) hashing to %s; want %d bytes", d.Digest, n, total, got, d.Size)
		}
	}
}

func TestE2EDockerRegistry(t *testing.T) {
	reg := startDockerRegistry(t, "")
	ctx := context.Background()

	// Seed: an image, a multi-platform index, and an SBOM-like artifact
	// whose subject is the image (docker-registry 2.8 has no referrers API,
	// so go-containerregistry maintains the sha256-<hex> tag).
	img, err := random.Image(300_000, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(reg.ref(t, "e2e/app:v1"), img); err != nil {
		t.Fatalf("push image: %v", err)
	}
	idx, err := random.Index(100_000, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(reg.ref(t, "e2e/multi:v1"), idx); err != nil {
		t.Fatalf("push index: %v", err)
	}
	imgDigest, _ := img.Digest()
	imgSize, _ := img.Size()
	imgMT, _ := img.MediaType()
	layer, err := random.Layer(2000, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	art, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	art = mutate.MediaType(art, types.OCIManifestSchema1)
	art = mutate.ConfigMediaType(art, "application/vnd.example.sbom.v1+json")
	art = mutate.Subject(art, v1.Descriptor{MediaType: imgMT, Digest: imgDigest, Size: imgSize}).(v1.Image)
	artDigest, _ := art.Digest()
	if err := remote.Write(reg.ref(t, "e2e/app@"+artDigest.String()), art); err != nil {
		t.Fatalf("push artifact: %v", err)
	}

	c := e2eClient(t, reg, nil)

	t.Run("image by tag", func(t *testing.T) {
		d, err := c.HeadManifest(ctx, "upstream.e2e", "e2e/app", oci.Reference{Tag: "v1"})
		if err != nil || d.Digest != oci.Digest(imgDigest.String()) || d.Size != imgSize {
			t.Fatalf("HeadManifest(e2e/app:v1) = %+v, %v; want %s, %d bytes", d, err, imgDigest, imgSize)
		}
		m, err := c.GetManifest(ctx, "upstream.e2e", "e2e/app", oci.Reference{Tag: "v1"})
		if err != nil || m.Descriptor.Digest != d.Digest {
			t.Fatalf("GetManifest(e2e/app:v1) = %v, %v", m.Descriptor, err)
		}
		checkImage(t, c, "e2e/app", img)
	})

	t.Run("index and its children", func(t *testing.T) {
		idxDigest, _ := idx.Digest()
		m, err := c.GetManifest(ctx, "upstream.e2e", "e2e/multi", oci.Reference{Tag: "v1"})
		if err != nil || string(m.Descriptor.Digest) != idxDigest.String() || !m.Parsed.IsIndex() {
			t.Fatalf("GetManifest(e2e/multi:v1) = %+v, %v; want the index %s", m.Descriptor, err, idxDigest)
		}
		if len(m.Parsed.Manifests) != 3 {
			t.Fatalf("index has %d children, want 3", len(m.Parsed.Manifests))
		}
		for _, child := range m.Parsed.Manifests {
			h, _ := v1.NewHash(string(child.Digest))
			ci, err := idx.Image(h)
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, c, "e2e/multi", ci)
		}
	})

	t.Run("resume a blob with Range", func(t *testing.T) {
		layers, _ := img.Layers()
		ld, _ := layers[0].Digest()
		whole, _ := layers[0].Compressed()
		want, _ := io.ReadAll(whole)
		off := int64(len(want) / 3)
		rc, total, err := c.GetBlob(ctx, "upstream.e2e", "e2e/app", oci.Digest(ld.String()), off)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || total != int64(len(want)) || !bytes.Equal(got, want[off:]) {
			t.Errorf("GetBlob from %d: %d bytes (total %d, err %v), want %d", off, len(got), total, err, len(want)-int(off))
		}
	})

	t.Run("referrers through the tag schema", func(t *testing.T) {
		refs, err := c.Referrers(ctx, "upstream.e2e", "e2e/app", oci.Digest(imgDigest.String()), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(refs) != 1 || refs[0].Digest != oci.Digest(artDigest.String()) || refs[0].ArtifactType != "application/vnd.example.sbom.v1+json" {
			t.Fatalf("Referrers = %+v, want the artifact %s", refs, artDigest)
		}
		refs, err = c.Referrers(ctx, "upstream.e2e", "e2e/app", oci.Digest(imgDigest.String()), "application/vnd.example.sig")
		if err != nil || len(refs) != 0 {
			t.Errorf("Referrers(artifactType sig) = %+v, %v; want none", refs, err)
		}
		var artImg v1.Image = art
		checkImage(t, c, "e2e/app", artImg)
	})

	t.Run("not found", func(t *testing.T) {
		if _, err := c.GetManifest(ctx, "upstream.e2e", "e2e/app", oci.Reference{Tag: "nope"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetManifest(unknown tag) = %v, want ErrNotFound", err)
		}
		if _, _, err := c.GetBlob(ctx, "upstream.e2e", "e2e/app", oci.SHA256.FromBytes([]byte("nope")), 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetBlob(unknown digest) = %v, want ErrNotFound", err)
		}
	})

	t.Run("upstream stopped", func(t *testing.T) {
		reg.stop()
		c := e2eClient(t, reg, func(o *Options) { o.Timeout = time.Second })
		start := time.Now()
		_, err := c.GetManifest(ctx, "upstream.e2e", "e2e/app", oci.Reference{Tag: "v1"})
		if !errors.Is(err, ErrUnavailable) || time.Since(start) > 1500*time.Millisecond {
			t.Errorf("GetManifest with the upstream stopped = %v after %s, want ErrUnavailable within 1s", err, time.Since(start))
		}
		if msg := ClientMessage(err); strings.Contains(msg, reg.addr) {
			t.Errorf("ClientMessage = %q leaks the upstream address", msg)
		}
	})
}

func TestE2EDockerRegistryBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("ci:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := startDockerRegistry(t, fmt.Sprintf("auth: {htpasswd: {realm: e2e-realm, path: %s}}\n", htpasswd))
	img, err := random.Image(1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(reg.ref(t, "e2e/private:v1"), img, remote.WithAuth(&authn.Basic{Username: "ci", Password: "s3cret"})); err != nil {
		t.Fatalf("push with basic auth: %v", err)
	}
	dg, _ := img.Digest()
	t.Run("with the credential set", func(t *testing.T) {
		c := e2eClient(t, reg, func(o *Options) { o.Credentials = map[string]Credential{"upstream.e2e": {"ci", "s3cret"}} })
		m, err := c.GetManifest(context.Background(), "upstream.e2e", "e2e/private", oci.Reference{Tag: "v1"})
		if err != nil || string(m.Descriptor.Digest) != dg.String() {
			t.Fatalf("GetManifest = %v, %v; want %s", m.Descriptor, err, dg)
		}
		checkImage(t, c, "e2e/private", img)
	})
	t.Run("anonymous", func(t *testing.T) {
		c := e2eClient(t, reg, nil)
		_, err := c.GetManifest(context.Background(), "upstream.e2e", "e2e/private", oci.Reference{Tag: "v1"})
		if !errors.Is(err, ErrUnauthorized) {
			t.Errorf("GetManifest without credentials = %v, want ErrUnauthorized", err)
		}
	})
}
