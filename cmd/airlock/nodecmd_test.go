package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const nodeTestConfig = `version: 1
registry:
  cacheRules:
    - { name: aks-managed-mcr, sourceRepo: "mcr.microsoft.com/*", targetRepo: "aks-managed-repository/*" }
node:
  outboundType: block
  artifactSource: Cache
  registry: 10.42.2.4:5000
  dns: 10.42.2.4:53
  allowedAddresses: [ 10.42.0.0/16 ]
`

func TestNodeApplyDryRun(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "airlock.yaml")
	writeFile(t, cfg, nodeTestConfig)
	root := filepath.Join(dir, "root")
	var out, errOut bytes.Buffer
	code := run([]string{"node", "apply", "--config", cfg, "--root", root, "--dry-run", "--outbound-type", "userDefinedRouting"}, &out, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), "node.gateway") {
		t.Errorf("node apply --outbound-type userDefinedRouting without a gateway = %d %q, want %d naming node.gateway", code, errOut.String(), exitUsage)
	}
	out.Reset()
	errOut.Reset()
	code = run([]string{"node", "apply", "--config", cfg, "--root", root, "--dry-run"}, &out, &errOut)
	if code != exitOK {
		t.Fatalf("node apply --dry-run = %d, stderr %q", code, errOut.String())
	}
	for _, want := range []string{
		"table inet airlock_node {",
		"ip daddr 10.42.2.4 tcp dport 5000 accept",
		"# /etc/containerd/certs.d/mcr.microsoft.com/hosts.toml",
		`[host."http://10.42.2.4:5000/v2/aks-managed-repository"]`,
		"nameserver 10.42.2.4",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("node apply --dry-run output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(root); err == nil {
		t.Errorf("node apply --dry-run created %s", root)
	}
	out.Reset()
	code = run([]string{"node", "apply", "--config", cfg, "--root", root, "--dry-run", "--artifact-source", "Direct", "--outbound-type", "loadBalancer"}, &out, &errOut)
	if code != exitOK || strings.Contains(out.String(), "hosts.toml") || strings.Contains(out.String(), "table inet airlock_node {") {
		t.Errorf("node apply --dry-run Direct/loadBalancer = %d:\n%s\nwant no hosts.toml and no table", code, out.String())
	}
}

func TestNodeBadFlagValues(t *testing.T) {
	for _, args := range [][]string{
		{"node", "apply", "--outbound-type", "open", "--dry-run"},
		{"node", "apply", "--artifact-source", "Internet", "--dry-run"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "must be") {
			t.Errorf("run(%q) = %d %q, want %d with what the value must be", args, code, errOut.String(), exitUsage)
		}
	}
}

func TestNodeStatusNotApplied(t *testing.T) {
	var out, errOut bytes.Buffer
	// A root with no state: nothing applied (nft may be missing or show no table).
	code := run([]string{"node", "status", "--root", t.TempDir()}, &out, &errOut)
	if !strings.Contains(out.String(), "not applied") {
		t.Errorf("node status on an empty root = %d %q %q, want \"not applied\"", code, out.String(), errOut.String())
	}
}
