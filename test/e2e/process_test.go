//go:build e2e

package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// process is one server started by a test. It is stopped only through the
// PID recorded here.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited and been reaped
	waitErr error         // valid after done
}

// startProcess runs bin with args, stdout and stderr appended to logPath.
// The process gets SIGKILL if the test binary dies first (Pdeathsig).
func startProcess(t testing.TB, name, logPath, bin string, args ...string) *process {
	t.Helper()
	return startProcessEnv(t, name, logPath, nil, bin, args...)
}

// startProcessEnv is startProcess with env (KEY=value) added to this
// process's environment.
func startProcessEnv(t testing.TB, name, logPath string, env []string, bin string, args ...string) *process {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("open log %s: %v", logPath, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to grace, then SIGKILL. It returns
// whether SIGKILL was needed and the exit error (nil for exit status 0).
func (p *process) stop(grace time.Duration) (killed bool, err error) {
	if p.exited() {
		return false, p.waitErr
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return false, p.waitErr
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	return true, p.waitErr
}

// kill sends SIGKILL at once and waits for the exit.
func (p *process) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// logTail returns the last n lines of the process log.
func (p *process) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// waitFor polls ready every 50 ms until it returns true, the process exits
// or timeout passes.
func waitFor(p *process, timeout time.Duration, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ready() {
			return nil
		}
		if p.exited() {
			return errors.New(p.name + " exited before it was ready: " + errString(p.waitErr))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New(p.name + " not ready after " + timeout.String())
}

func errString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
