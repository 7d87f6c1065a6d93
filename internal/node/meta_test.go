package node

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// metaSnapshot maps every regular file and symlink under root (relative
// path) to its content, permission bits and owner, so a test sees a
// change of mode or owner as well as one of content.
func metaSnapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(root, p)
		body := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			body = "-> " + l
		} else {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			body = string(b)
		}
		m[rel] = fmt.Sprintf("%v %d:%d %q", fi.Mode(), st.Uid, st.Gid, body)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// secretFiles writes a containerd config that holds credentials (0600,
// owned by uid/gid 1234 when the test runs as root) and a resolv.conf
// with an unusual mode, the files apply replaces.
func secretFiles(t *testing.T, root string) {
	t.Helper()
	write(t, root, "etc/containerd/config.toml", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"corp.example\".auth]\n  password = \"s3cret\"\n")
	write(t, root, "etc/resolv.conf", "nameserver 192.0.2.53\n")
	for path, mode := range map[string]fs.FileMode{"etc/containerd/config.toml": 0o600, "etc/resolv.conf": 0o640} {
		p := filepath.Join(root, path)
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			if err := os.Chown(p, 1234, 1234); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestApplyKeepsModeAndOwner: a file apply replaces keeps its mode and
// owner; a failed apply (at the route step, the last before the state)
// and a reset put back content, mode and owner exactly. The owner half
// needs root (chown); without it only modes are checked.
func TestApplyKeepsModeAndOwner(t *testing.T) {
	udr := func(in *Input) { in.Config.OutboundType = OutboundUserDefinedRouting }
	t.Run("rollback after a failed route step", func(t *testing.T) {
		root := t.TempDir()
		secretFiles(t, root)
		before := metaSnapshot(t, root)
		fn := newFakeNet()
		fn.Fail = func(c string) error {
			if strings.HasPrefix(c, "ip -4 route replace default") {
				return fmt.Errorf("injected route failure")
			}
			return nil
		}
		n := New(root, fn, nil)
		if _, err := n.Apply(context.Background(), testInput(udr)); err == nil || !strings.Contains(err.Error(), "injected route failure") {
			t.Fatalf("Apply with a failing route = %v, want the injected failure", err)
		}
		if diff := cmp.Diff(before, metaSnapshot(t, root)); diff != "" {
			t.Errorf("files after the rolled-back Apply differ (-before +after):\n%s", diff)
		}
	})
	t.Run("apply then reset", func(t *testing.T) {
		root := t.TempDir()
		secretFiles(t, root)
		before := metaSnapshot(t, root)
		n := New(root, newFakeNet(), nil)
		mustApply(t, n, testInput())
		after := metaSnapshot(t, root)
		for _, path := range []string{"etc/containerd/config.toml", "etc/resolv.conf"} {
			if got, want := after[path][:strings.Index(after[path], " \"")], before[path][:strings.Index(before[path], " \"")]; got != want {
				t.Errorf("%s after apply: mode and owner %q, want %q as before", path, got, want)
			}
		}
		if _, err := n.Reset(context.Background()); err != nil {
			t.Fatalf("Reset: %v", err)
		}
		if diff := cmp.Diff(before, metaSnapshot(t, root)); diff != "" {
			t.Errorf("files after Reset differ from before apply (-before +after):\n%s", diff)
		}
	})
}
