//go:build linux

package verify

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` puts named network namespaces.
const netnsDir = "/run/netns"

// netns is a named network namespace probes run in.
type netns struct {
	name string
	f    *os.File
}

func openNetns(name string) (*netns, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("network namespace name %q: must be a name under %s, as ip netns lists it", name, netnsDir)
	}
	f, err := os.Open(filepath.Join(netnsDir, name))
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", name, err)
	}
	return &netns{name: name, f: f}, nil
}

// enter locks the calling goroutine to its OS thread and moves the thread
// into the namespace. The thread is never unlocked: when the goroutine
// ends, the runtime ends the thread instead of reusing it elsewhere.
func (n *netns) enter() error {
	runtime.LockOSThread()
	if err := unix.Setns(int(n.f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("joining network namespace %s (needs root): %w", n.name, err)
	}
	return nil
}

func (n *netns) close() error { return n.f.Close() }
