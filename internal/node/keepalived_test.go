package node

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// keepalivedExample is the example config shipped for gateway replicas,
// and its check script.
const (
	keepalivedExample = "../../deploy/keepalived/keepalived.conf.example"
	keepalivedCheck   = "../../deploy/keepalived/keepalived-check.sh"
	// keepalivedCheckPath is where the example expects the check script.
	keepalivedCheckPath = "/usr/local/lib/airlock/keepalived-check.sh"
)

// needKeepalived returns keepalived's path; it skips the test when it is
// not installed, or fails it when AIRLOCK_REQUIRE_TOOLS=1. keepalived's
// script security wants the script owned by root: not root, it skips.
func needKeepalived(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		msg := "keepalived not installed: apt-get install keepalived (scripts/deps.sh)"
		if os.Getenv("AIRLOCK_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if os.Geteuid() != 0 {
		t.Skip("keepalived checks that its scripts are owned by root: run as root")
	}
	return bin
}

// installCheckScript copies the example's check script into a fresh
// directory only root may write, and returns its path.
func installCheckScript(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(keepalivedCheck)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "lib")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "keepalived-check.sh")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKeepalivedExample: `keepalived -t` accepts the example as shipped
// (the check script's path aside) and for gw2, and the check is tracked.
func TestKeepalivedExample(t *testing.T) {
	bin := needKeepalived(t)
	raw, err := os.ReadFile(keepalivedExample)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), keepalivedCheckPath) {
		t.Fatalf("%s does not name %s", keepalivedExample, keepalivedCheckPath)
	}
	script := installCheckScript(t)
	gw1 := strings.ReplaceAll(string(raw), keepalivedCheckPath, script)
	// gw2 as the comments say: addresses swapped, priority lowered.
	gw2 := strings.NewReplacer(
		"unicast_src_ip 10.42.2.4", "unicast_src_ip 10.42.2.5",
		"\t\t10.42.2.5 ", "\t\t10.42.2.4 ",
		"priority 150", "priority 100",
		"router_id airlock_gw1", "router_id airlock_gw2",
	).Replace(gw1)
	for _, tt := range []struct{ name, conf string }{{"gw1", gw1}, {"gw2", gw2}, {"missing script", string(raw)}} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "keepalived.conf")
			if err := os.WriteFile(p, []byte(tt.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "-t", "-l", "-f", p).CombinedOutput()
			if tt.name == "missing script" {
				// The check proves -t looks at the script: without it the
				// track is dropped and -t fails.
				if err == nil {
					t.Errorf("keepalived -t with %s missing = ok, want an error", keepalivedCheckPath)
				}
				return
			}
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("keepalived -t -f %s (%s) = %v:\n%s", keepalivedExample, tt.name, err, out)
			}
		})
	}
	if gw2 == gw1 || strings.Contains(gw2, "unicast_src_ip 10.42.2.4") {
		t.Errorf("gw2 replacements did not apply:\n%s", gw2)
	}
}
