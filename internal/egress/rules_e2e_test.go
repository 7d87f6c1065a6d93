//go:build e2e

package egress

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/hostfw"
	"github.com/airlockdev/airlock/internal/testkit/netnstest"
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
	netnstest.Exec(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })

	// Apply from this process, inside the namespace: nft inherits it.
	in := RulesInput{TransparentPort: 15001, DNSPort: 53}
	var applyErr, listErr error
	var out []byte
	netnstest.Do(t, ns, func() {
		for i := 0; i < 2; i++ {
			if err := InstallRules(context.Background(), hostfw.Exec{}, in); err != nil {
				applyErr = fmt.Errorf("apply #%d: %w", i+1, err)
				return
			}
		}
		out, listErr = exec.Command("nft", "list", "table", "inet", RulesTable).CombinedOutput()
	})
	if applyErr != nil {
		t.Fatal(applyErr)
	}
	if listErr != nil {
		t.Fatalf("nft list: %v: %s", listErr, out)
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
