package hostfw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Runner runs an outside command (nft, ip) with stdin and returns its
// standard output. Tests inject a fake; Exec runs the real one.
type Runner interface {
	Run(ctx context.Context, stdin string, name string, args ...string) ([]byte, error)
}

// Exec runs commands with os/exec in the caller's network namespace; an
// error carries the command's standard error.
type Exec struct {
	// Root, when set, is a directory holding another system's file tree
	// (the host's /, mounted into a pod): the command is looked up in its
	// sbin and bin directories and run chrooted into it, so the host's
	// own nft and ip run with the host's libraries. "" or "/": the
	// caller's PATH and file system.
	Root string
}

var _ Runner = Exec{}

// toolDirs are where Run looks for a command under Root.
var toolDirs = []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"}

// command builds the exec.Cmd for name under e.Root.
func (e Exec) command(ctx context.Context, name string, args ...string) (*exec.Cmd, error) {
	if e.Root == "" || e.Root == "/" {
		return exec.CommandContext(ctx, name, args...), nil
	}
	for _, d := range toolDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(filepath.Join(e.Root, p)); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			cmd := exec.CommandContext(ctx, p, args...)
			// The path is resolved by execve after the chroot.
			cmd.Dir = "/"
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: e.Root}
			return cmd, nil
		}
	}
	return nil, fmt.Errorf("%s not found under %s (looked in %s): install it on the host (Debian: apt-get install nftables iproute2) or check node.toolsRoot", name, e.Root, strings.Join(toolDirs, ", "))
}

// Run implements Runner.
func (e Exec) Run(ctx context.Context, stdin string, name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd, err := e.command(ctx, name, args...)
	if err != nil {
		return nil, err
	}
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("%s not found: install it (Debian: apt-get install nftables iproute2)", name)
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %s", name, strings.Join(args, " "), msg)
	}
	return stdout.Bytes(), nil
}
