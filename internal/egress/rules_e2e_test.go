//go:build e2e

package egress

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/hostfw"
	"golang.org/x/sys/unix"
)

// TestE2ERulesetApplies installs the ruleset twice into a fresh network
// namespace with the real nft (replacement is atomic and idempotent) and
// reads it back.
func TestE2ERulesetApplies(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and nftables")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed (scripts/deps.sh installs nftables)")
	}
	var b [4]byte
	rand.Read(b[:])
	ns := "alxu-rules-" + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })

	// Apply from this process, inside the namespace: nft inherits it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	defer unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET)

	in := RulesInput{TransparentPort: 15001, DNSPort: 53}
	for i := 0; i < 2; i++ {
		if err := InstallRules(context.Background(), hostfw.Exec{}, in); err != nil {
			t.Fatalf("apply #%d: %v", i+1, err)
		}
	}
	out, err := exec.Command("nft", "list", "table", "inet", RulesTable).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	for _, want := range []string{"redirect to :15001", "th dport 53", "hook forward priority filter; policy drop;", "fib daddr type local return"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("installed table lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(string(out), "chain prerouting"); n != 1 {
		t.Errorf("after two applies the table has %d prerouting chains, want 1 (atomic replace)", n)
	}
}
