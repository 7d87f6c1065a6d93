//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// skopeo runs Debian's skopeo with --insecure-policy (no policy.json needed)
// and returns its combined output. It never talks to anything but the
// loopback registries named in args.
func skopeo(t testing.TB, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Fatalf("skopeo not installed (scripts/deps.sh installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	full := append([]string{"--insecure-policy"}, args...)
	cmd := exec.CommandContext(ctx, "skopeo", full...)
	// A private HOME and runtime dir: no stray auth.json or registries.conf
	// from the machine changes what skopeo does.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_RUNTIME_DIR="+home, "XDG_CONFIG_HOME="+home,
		"REGISTRY_AUTH_FILE="+home+"/auth.json", "http_proxy=", "https_proxy=", "HTTP_PROXY=", "HTTPS_PROXY=")
	out, err := cmd.CombinedOutput()
	t.Logf("skopeo %s\n%s", strings.Join(args, " "), out)
	return string(out), err
}

// mustSkopeo is skopeo that fails the test on error.
func mustSkopeo(t testing.TB, args ...string) string {
	t.Helper()
	out, err := skopeo(t, args...)
	if err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}
