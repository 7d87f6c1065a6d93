// Package containerdtest starts a private containerd for a test: its own
// root, state, config and socket under one directory, CRI off, no metrics
// listener, optionally inside a network namespace. Only tests import it.
package containerdtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/proctest"
)

// Options say which containerd to start and where.
type Options struct {
	// Dir holds root/, state/, config.toml and the socket (created if
	// missing, not removed). Keep it short: the socket path must fit in
	// sun_path (108 bytes).
	Dir string
	// Binary is the containerd to run; "" is containerd from $PATH.
	Binary string
	// Ctr is the ctr that Ctr runs; "" is ctr from $PATH.
	Ctr string
	// Socket is the gRPC socket's file name under Dir; "" is c.sock.
	Socket string
	// Config is TOML appended to the generated config.toml.
	Config string
	// Netns runs containerd and every ctr inside this network namespace
	// (ip netns exec); "" runs them in the test's own.
	Netns string
	// Namespace is ctr's --namespace; "" is ctr's default.
	Namespace string
	// Log receives containerd's output; "" is Dir/containerd.log.
	Log string
	// Wait is how long to wait for ctr version to answer; 0 is 30s.
	Wait time.Duration
}

// Containerd is a started containerd. Cleanup stops it by its PID
// (proctest: SIGTERM, SIGKILL after 10s).
type Containerd struct {
	Socket string // the gRPC socket (ctr --address)
	Log    string // containerd's output
	o      Options
}

// Config is the config.toml text for a containerd whose root and state are
// under dir and whose gRPC socket is sock (ttrpc at sock.ttrpc), with
// extra appended.
func Config(dir, sock, extra string) string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[metrics]
  address = ""
%[5]s`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc", extra)
}

// Start writes the config, starts containerd and waits until ctr version
// answers; a containerd that does not come up fails the test with the
// end of its log.
func Start(t testing.TB, o Options) *Containerd {
	t.Helper()
	if o.Binary == "" {
		o.Binary = "containerd"
	}
	if o.Ctr == "" {
		o.Ctr = "ctr"
	}
	if o.Socket == "" {
		o.Socket = "c.sock"
	}
	if o.Log == "" {
		o.Log = filepath.Join(o.Dir, "containerd.log")
	}
	if o.Wait == 0 {
		o.Wait = 30 * time.Second
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Containerd{Socket: filepath.Join(o.Dir, o.Socket), Log: o.Log, o: o}
	cfg := filepath.Join(o.Dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(Config(o.Dir, c.Socket, o.Config)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := c.inNetns(o.Binary, "--config", cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	proctest.StartLog(t, o.Log, cmd)
	for deadline := time.Now().Add(o.Wait); ; time.Sleep(100 * time.Millisecond) {
		if _, err := c.Ctr("version"); err == nil {
			return c
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(o.Log)
			t.Fatalf("containerd did not start:\n%s", lastLines(string(log), 40))
		}
	}
}

// Command is ctr --address SOCKET [--namespace NS] ARGS (in the network
// namespace, if any), not started.
func (c *Containerd) Command(args ...string) *exec.Cmd {
	full := []string{"--address", c.Socket}
	if c.o.Namespace != "" {
		full = append(full, "--namespace", c.o.Namespace)
	}
	return c.inNetns(c.o.Ctr, append(full, args...)...)
}

// Ctr runs ctr with args and returns its combined output.
func (c *Containerd) Ctr(args ...string) (string, error) {
	out, err := c.Command(args...).CombinedOutput()
	return string(out), err
}

// CtrOut runs ctr with args and returns its standard output alone.
func (c *Containerd) CtrOut(args ...string) (string, error) {
	out, err := c.Command(args...).Output()
	return string(out), err
}

func (c *Containerd) inNetns(bin string, args ...string) *exec.Cmd {
	if c.o.Netns == "" {
		return exec.Command(bin, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", c.o.Netns, bin}, args...)...)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
