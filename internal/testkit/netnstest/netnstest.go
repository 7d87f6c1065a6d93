//go:build linux

// Package netnstest is the network-namespace kit of the root e2e tests:
// it creates throwaway named namespaces, runs commands, and runs Go code
// with its sockets inside a namespace. Only tests import it.
//
// Thread semantic (the one every caller gets): Run executes fn on a fresh
// goroutine locked to its OS thread, which is switched into the namespace
// for the duration of fn and switched back afterwards. Sockets fn creates
// stay in the namespace for their whole life, whichever goroutine uses
// them later. The thread goes back to the runtime's pool only once it is
// back in its original namespace; if switching back fails, the goroutine
// exits locked and the runtime discards the thread. Threads are returned
// rather than discarded on purpose: a thread that ends takes along every
// child it forked with Pdeathsig, and any pooled thread may have forked one
// (os/exec forks on whatever thread the caller runs on).
//
// fn must not change other per-thread state (CPU affinity, unshare) and
// must not call t.FailNow (t.Fatal): it does not run on the test's
// goroutine. Record errors in fn and fail after Run returns.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Dir is where `ip netns add` puts named network namespaces.
const Dir = "/run/netns"

// Run runs fn on a thread switched into the named namespace ns (see the
// package comment for the thread semantic). It returns an error, without
// running fn, when the namespace cannot be entered.
func Run(ns string, fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join(Dir, ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		defer func() {
			// Deferred, so that it also runs if fn exits the goroutine.
			if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
				runtime.UnlockOSThread()
			} // else exit locked: the runtime discards the thread
			close(errc)
		}()
		fn()
	}()
	return <-errc
}

// Do is Run that fails the test when the namespace cannot be entered.
func Do(t testing.TB, ns string, fn func()) {
	t.Helper()
	if err := Run(ns, fn); err != nil {
		t.Fatalf("in netns %s: %v", ns, err)
	}
}

// Exec runs a command and returns its combined output; it fails the test,
// with the output, when the command fails.
func Exec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Add creates the named namespace with its loopback up and deletes it
// when the test ends.
func Add(t testing.TB, name string) {
	t.Helper()
	Exec(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	Exec(t, "ip", "-n", name, "link", "set", "lo", "up")
}

// RawICMPv6 opens a raw ICMPv6 socket in ns (it sees every ICMPv6 packet
// the namespace receives) and closes it when the test ends. Read it with
// unix.Recvfrom; the cleanup's shutdown ends a blocked read.
func RawICMPv6(t testing.TB, ns string) int {
	t.Helper()
	var fd int
	var err error
	Do(t, ns, func() { fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6) })
	if err != nil {
		t.Fatalf("raw ICMPv6 socket in %s: %v", ns, err)
	}
	t.Cleanup(func() { unix.Shutdown(fd, unix.SHUT_RDWR); unix.Close(fd) })
	return fd
}
