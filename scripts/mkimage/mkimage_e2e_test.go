//go:build e2e

package main

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"golang.org/x/crypto/bcrypt"

	"github.com/airlockdev/airlock/internal/testkit/containerdtest"
	"github.com/airlockdev/airlock/internal/testkit/porttest"
	"github.com/airlockdev/airlock/internal/testkit/proctest"
)

// TestE2EImageReproduciblePushPull: two builds of the same sources give the
// same index digest; the image pushed to a real `airlock serve` registry is
// pulled back by Debian's containerd (ctr, a private containerd on a
// private socket) under the same digest, for both platforms; the binary in
// the host's platform runs and prints its version.
func TestE2EImageReproduciblePushPull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (containerd)")
	}
	for _, bin := range []string{"containerd", "ctr", "git"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (scripts/deps.sh installs it)", bin)
		}
	}
	src, err := filepath.Abs("../..")
	must(t, err)
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "mkimg-") // short: containerd's socket path
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })

	// SOURCE_DATE_EPOCH: the last commit's time, or a fixed one when the
	// tree is an export without .git.
	if os.Getenv("SOURCE_DATE_EPOCH") == "" {
		if _, err := sourceDateEpoch(ctx, src); err != nil {
			t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
		}
	}
	// Two builds, same sources, same version string: same digest.
	var res [2]buildResult
	for i := range res {
		o := buildOptions{Out: filepath.Join(dir, fmt.Sprintf("image%d", i)), Platforms: []string{"linux/amd64", "linux/arm64"},
			Version: "e2e", CAFile: "/etc/ssl/certs/ca-certificates.crt", Src: src}
		res[i], err = build(ctx, o, io.Discard)
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		t.Logf("build %d: index %s, %v", i, res[i].Index, res[i].Platforms)
	}
	if res[0].Index != res[1].Index {
		t.Fatalf("two builds of the same sources: index %s and %s, want the same digest", res[0].Index, res[1].Index)
	}
	checkLayout(t, filepath.Join(dir, "image0"), res[0])

	// A real airlock registry on loopback; pushing needs a user.
	airlockBin := filepath.Join(dir, "airlock")
	if out, err := exec.Command("go", "build", "-o", airlockBin, "../../cmd/airlock").CombinedOutput(); err != nil {
		t.Fatalf("go build airlock: %v\n%s", err, out)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("pushpw"), 4)
	must(t, err)
	addr := porttest.FreeAddr(t)
	cfg := filepath.Join(dir, "airlock.yaml")
	must(t, os.WriteFile(cfg, fmt.Appendf(nil, `version: 1
registry:
  listen: %s
  storage: { path: %s }
  anonymousPull: true
  users: [ { name: pusher, passwordHash: '%s' } ]
`, addr, filepath.Join(dir, "registry"), hash), 0o644))
	proctest.Daemon(t, filepath.Join(dir, "airlock.log"), airlockBin, "serve", "--config", cfg)
	waitHTTP(t, "http://"+addr+"/v2/")
	t.Setenv("MKIMAGE_TEST_PW", "pushpw")
	ref := addr + "/airlock:e2e"
	d, err := push(ctx, pushOptions{Layout: filepath.Join(dir, "image0"), To: ref, User: "pusher", PasswordEnv: "MKIMAGE_TEST_PW"})
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if d != res[0].Index {
		t.Fatalf("push returned %s, want the index %s", d, res[0].Index)
	}

	// Debian's containerd with a private root, state and socket.
	ctr := containerdtest.Start(t, containerdtest.Options{Dir: filepath.Join(dir, "ctrd"), Log: filepath.Join(dir, "containerd.log"),
		Namespace: "mkimage"}).Ctr
	out, err := ctr("images", "pull", "--plain-http", "--all-platforms", ref)
	if err != nil {
		t.Fatalf("ctr images pull: %v\n%s", err, out)
	}
	ls, err := ctr("images", "ls")
	if err != nil || !strings.Contains(ls, res[0].Index.String()) {
		t.Fatalf("ctr images ls = %v\n%s\nwant %s at digest %s", err, ls, ref, res[0].Index)
	}
	t.Logf("ctr images ls:\n%s", ls)
	if out, err := ctr("images", "check"); err != nil || !strings.Contains(out, "complete") {
		t.Errorf("ctr images check = %v\n%s\nwant the image complete (every platform's content pulled)", err, out)
	} else {
		t.Logf("ctr images check:\n%s", out)
	}
}

// checkLayout reads the layout back: the host platform's binary layer has
// the static airlock, which runs; the config has the non-root user and no
// shell anywhere.
func checkLayout(t *testing.T, dir string, res buildResult) {
	t.Helper()
	lp, err := layout.FromPath(dir)
	must(t, err)
	top, err := lp.ImageIndex()
	must(t, err)
	idx, err := top.ImageIndex(res.Index)
	must(t, err)
	im, err := idx.IndexManifest()
	must(t, err)
	if len(im.Manifests) != 2 {
		t.Fatalf("index has %d manifests, want 2 (amd64, arm64)", len(im.Manifests))
	}
	for _, m := range im.Manifests {
		if m.Platform.Architecture != runtime.GOARCH {
			continue
		}
		img, err := idx.Image(m.Digest)
		must(t, err)
		cf, err := img.ConfigFile()
		must(t, err)
		if cf.Config.User != "65532:65532" || cf.Created.Unix() <= 0 {
			t.Errorf("config user %q created %v, want 65532:65532 and the commit time", cf.Config.User, cf.Created)
		}
		layers, err := img.Layers()
		must(t, err)
		var files []string
		for _, l := range layers {
			rc, err := l.Uncompressed()
			must(t, err)
			tr := tar.NewReader(rc)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				must(t, err)
				files = append(files, h.Name)
				if h.Name == binPath {
					bin := filepath.Join(t.TempDir(), "airlock")
					f, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
					must(t, err)
					_, err = io.Copy(f, tr)
					must(t, err)
					f.Close()
					out, err := exec.Command(bin, "version").CombinedOutput()
					if err != nil || !strings.Contains(string(out), "airlock e2e") {
						t.Errorf("the image's airlock version = %q %v, want airlock e2e", out, err)
					}
					if ldd, _ := exec.Command("file", bin).Output(); len(ldd) > 0 && !strings.Contains(string(ldd), "statically linked") {
						t.Errorf("the image's binary is not static: %s", ldd)
					}
				}
			}
			rc.Close()
		}
		for _, f := range files {
			if strings.HasPrefix(f, "bin/") || strings.HasSuffix(f, "/sh") {
				t.Errorf("image has %s: want no shell", f)
			}
		}
		t.Logf("%s image files: %v", m.Platform.Architecture, files)
	}
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not up: %v", url, err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
