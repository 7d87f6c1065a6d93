// Package redistest runs a private redis-server on loopback for tests of
// internal/cluster. Only tests import it.
//
// The server is Debian's redis-server (scripts/deps.sh installs it). Without
// it Start skips the test, or fails it when AIRLOCK_REQUIRE_TOOLS=1. It
// listens on 127.0.0.1 on a port picked at run time, keeps nothing on disk
// (an empty --save, --appendonly no, --dir a temporary directory) and is stopped
// by its PID when the test ends. A system Redis is never used.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/porttest"
)

const startTimeout = 10 * time.Second

// Redis is one running redis-server.
type Redis struct {
	// Addr is 127.0.0.1:PORT.
	Addr string

	t       testing.TB
	bin     string
	dir     string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	waited chan struct{}
}

// Start runs redis-server on a free loopback port, waits until it answers
// PING, and stops it when the test ends.
func Start(t testing.TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server not installed: apt-get install redis-server (scripts/deps.sh)"
		if os.Getenv("AIRLOCK_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	r := &Redis{t: t, bin: bin, Addr: porttest.FreeAddr(t), dir: t.TempDir()}
	r.logPath = filepath.Join(r.dir, "redis.log")
	t.Cleanup(r.Stop)
	r.start()
	return r
}

func (r *Redis) start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.Addr)
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.t.Fatalf("redis log: %v", err)
	}
	defer logf.Close()
	cmd := exec.Command(r.bin, "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--daemonize", "no")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = r.dir
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	r.mu.Lock()
	r.cmd, r.waited = cmd, exited
	r.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			r.Stop()
			r.t.Fatalf("redis-server exited before answering on %s; log:\n%s", r.Addr, r.log())
		default:
		}
		err := ping(r.Addr)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			r.Stop()
			r.t.Fatalf("redis-server not answering on %s after %v: %v; log:\n%s", r.Addr, startTimeout, err, r.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends PING in the inline protocol and wants +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

func (r *Redis) log() string {
	b, _ := os.ReadFile(r.logPath)
	return string(b)
}

// Stop kills redis-server by its PID and waits until it has exited; a no-op
// when stopped. Its data is gone (nothing is saved); clients then get
// connection refused.
func (r *Redis) Stop() {
	r.mu.Lock()
	cmd, exited := r.cmd, r.waited
	r.cmd, r.waited = nil, nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// Restart starts a stopped redis-server again on the same port, empty.
func (r *Redis) Restart() {
	r.t.Helper()
	r.Stop()
	r.start()
}
