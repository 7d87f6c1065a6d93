//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/containerdtest"
)

// containerd is a containerd 1.6 daemon with a private config, root, state
// and socket under one temporary directory (CRI off, no TCP listener).
type containerd struct {
	dir   string
	sock  string
	netns string // the network namespace containerd and ctr run in; "" for the test's own
	proc  *process
}

// startContainerd starts containerd and waits until ctr can talk to it.
// Cleanup stops it by its PID, lazily unmounts whatever it left mounted
// under its directory and removes the directory.
func startContainerd(t testing.TB) *containerd {
	t.Helper()
	return startContainerdIn(t, "")
}

// startContainerdIn is startContainerd with containerd, and every ctr the
// test runs, inside network namespace ns (none when ns is "").
func startContainerdIn(t testing.TB, ns string) *containerd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("containerd needs root (snapshot mounts); make e2e runs as root")
	}
	for _, bin := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not installed (scripts/deps.sh installs containerd): %v", bin, err)
		}
	}
	// Short: the socket path must fit in sun_path (108 bytes).
	dir, err := os.MkdirTemp("", "al-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &containerd{dir: dir, sock: filepath.Join(dir, "containerd.sock"), netns: ns}
	t.Cleanup(func() {
		if c.proc != nil {
			if killed, err := c.proc.stop(10 * time.Second); killed {
				t.Logf("containerd (pid %d) needed SIGKILL", c.proc.pid())
			} else if err != nil {
				t.Logf("containerd (pid %d) exit: %v", c.proc.pid(), err)
			}
		}
		unmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("remove %s: %v", dir, err)
		}
	})
	cfg := containerdtest.Config(dir, c.sock, fmt.Sprintf(`[plugins."io.containerd.service.v1.diff-service"]
  default = ["walking"]
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "opt")))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, args := "containerd", []string{"--config", cfgPath}
	if ns != "" {
		bin, args = "ip", append([]string{"netns", "exec", ns, "containerd"}, args...)
	}
	c.proc = startProcess(t, "containerd", filepath.Join(dir, "containerd.log"), bin, args...)
	err = waitFor(c.proc, 30*time.Second, func() bool {
		_, err := c.ctrQuiet("version")
		return err == nil
	})
	if err != nil {
		t.Fatalf("start containerd: %v\nlog:\n%s", err, c.proc.logTail(40))
	}
	t.Logf("containerd pid %d, socket %s", c.proc.pid(), c.sock)
	return c
}

// ctr runs `ctr -a SOCK -n e2e ARGS…` and returns its combined output.
func (c *containerd) ctr(t testing.TB, args ...string) (string, error) {
	t.Helper()
	out, err := c.ctrQuiet(args...)
	t.Logf("ctr %s (%v)\n%s", strings.Join(args, " "), err, tailLines(ansiRE.ReplaceAllString(out, ""), 12))
	return out, err
}

func (c *containerd) ctrQuiet(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	full := append([]string{"-a", c.sock, "-n", "e2e"}, args...)
	cmd := exec.CommandContext(ctx, "ctr", full...)
	if c.netns != "" {
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", c.netns, "ctr"}, full...)...)
	}
	// No proxy from the environment: every address here is loopback.
	cmd.Env = append(os.Environ(), "http_proxy=", "https_proxy=", "HTTP_PROXY=", "HTTPS_PROXY=", "no_proxy=", "NO_PROXY=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ansiRE matches the colour codes of ctr's progress display.
var ansiRE = regexp.MustCompile("\x1b\\[[0-9;]*m")

// mustCtr is ctr that fails the test on error.
func (c *containerd) mustCtr(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.ctr(t, args...)
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s\ncontainerd log:\n%s", strings.Join(args, " "), err, out, c.proc.logTail(20))
	}
	return out
}

// contentDigests lists the digests in containerd's content store.
func (c *containerd) contentDigests(t testing.TB) map[string]bool {
	t.Helper()
	out, err := c.ctrQuiet("content", "ls", "-q")
	if err != nil {
		t.Fatalf("ctr content ls: %v\n%s", err, out)
	}
	m := map[string]bool{}
	for _, l := range strings.Fields(out) {
		m[l] = true
	}
	return m
}

// writeHostsToml writes DIR/<host>/hosts.toml and returns DIR.
func writeHostsToml(t testing.TB, host, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, host, "hosts.toml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s/hosts.toml:\n%s", host, content)
	return dir
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(t testing.TB, dir string) {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Logf("read mountinfo: %v", err)
		return
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		if out, err := exec.Command("umount", "-l", points[i]).CombinedOutput(); err != nil {
			t.Logf("umount -l %s: %v %s", points[i], err, out)
		}
	}
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
