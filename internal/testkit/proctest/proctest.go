// Package proctest runs a test's daemons in the foreground and stops them
// by the PID it started when the test ends. Only tests import it.
package proctest

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// StopWait is how long a stopped process has between SIGTERM and SIGKILL.
const StopWait = 10 * time.Second

// Start starts cmd (as set up by the caller: output, SysProcAttr) and
// registers its stop: SIGTERM to its PID, SIGKILL after StopWait, then
// wait. A command run through `ip netns exec` is stopped as well, as ip
// execs it under the same PID.
func Start(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(StopWait):
			cmd.Process.Kill()
			<-done
		}
	})
}

// StartLog is Start with cmd's standard output and error in the file log
// (created; closed after the process stopped).
func StartLog(t testing.TB, log string, cmd *exec.Cmd) {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cmd.Stdout, cmd.Stderr = f, f
	Start(t, cmd)
}

// Daemon runs bin with args in the foreground with its output in the file
// log (StartLog); it also dies with a killed test binary (Pdeathsig).
func Daemon(t testing.TB, log, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	StartLog(t, log, cmd)
}
