package hostfw_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/hostfw"
)

// TestExecRoot runs a static program placed under a directory that
// stands for the host's file tree: Exec{Root} must run it chrooted there
// (it reads that tree's /marker), and name a missing command clearly.
func TestExecRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	root := t.TempDir()
	bin := filepath.Join(root, "usr/sbin/whereami")
	build := exec.Command("go", "build", "-o", bin, "./testdata/whereami")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(root, "marker"), []byte("host tree"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := hostfw.Exec{Root: root}.Run(context.Background(), "stdin text", "whereami", "arg")
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := string(out), "host tree|stdin text|arg"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
	_, err = hostfw.Exec{Root: root}.Run(context.Background(), "", "nft", "list", "ruleset")
	if err == nil || !strings.Contains(err.Error(), "nft not found under "+root) {
		t.Errorf("missing command: err = %v, want it to name nft and the root", err)
	}
	// The command's own failure carries its standard error.
	if err := os.Remove(filepath.Join(root, "marker")); err != nil {
		t.Fatal(err)
	}
	if _, err := (hostfw.Exec{Root: root}).Run(context.Background(), "", "whereami", "x"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("failing command: err = %v, want its stderr", err)
	}
}
