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
  sandboxImage: mcr.microsoft.com/oss/kubernetes/pause:3.6
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

// TestNodeApplyReplicas: node.registry and node.dns as lists reach every
// hosts.toml, resolv.conf and the ruleset; a bad entry is named by its
// index and place in the file; node.gateway takes one address.
func TestNodeApplyReplicas(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "airlock.yaml")
	list := strings.Replace(nodeTestConfig, "  registry: 10.42.2.4:5000\n  dns: 10.42.2.4:53\n",
		"  registry: [ 10.42.2.4:5000, 10.42.2.5:5000 ]\n  dns:\n    - 10.42.2.4:53\n    - 10.42.2.5:53\n", 1)
	writeFile(t, cfg, list)
	var out, errOut bytes.Buffer
	if code := run([]string{"node", "apply", "--config", cfg, "--root", filepath.Join(dir, "root"), "--dry-run"}, &out, &errOut); code != exitOK {
		t.Fatalf("node apply --dry-run = %d, stderr %q", code, errOut.String())
	}
	for _, want := range []string{
		`ip daddr 10.42.2.5 tcp dport 5000 accept comment "airlock registry (node.registry[1])"`,
		`ip daddr 10.42.2.5 meta l4proto { tcp, udp } th dport 53 accept comment "airlock DNS (node.dns[1])"`,
		"[host.\"http://10.42.2.4:5000/v2/aks-managed-repository\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n\n[host.\"http://10.42.2.5:5000/v2/aks-managed-repository\"]",
		"nameserver 10.42.2.4\nnameserver 10.42.2.5\noptions timeout:1 attempts:2\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("node apply --dry-run output lacks %q:\n%s", want, out.String())
		}
	}

	for _, tt := range []struct {
		name, from, to, want string
	}{
		{"bad entry", "10.42.2.5:5000 ]", "registry.local:5000 ]", `airlock.yaml:8:31: node.registry[1]: host "registry.local" must be an IP address`},
		{"two gateways", "  allowedAddresses", "  gateway: [ 10.42.2.1, 10.42.2.2 ]\n  allowedAddresses", "node.gateway: must be one IP address, the next hop of the default route, got 2: use the virtual address (keepalived or a load balancer) of your gateway replicas"},
		{"a map", "  allowedAddresses", "  gateway: { a: b }\n  allowedAddresses", "node.gateway: expected a string, got a map"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, cfg, strings.Replace(list, tt.from, tt.to, 1))
			out.Reset()
			errOut.Reset()
			code := run([]string{"node", "apply", "--config", cfg, "--root", filepath.Join(dir, "root"), "--dry-run"}, &out, &errOut)
			if code == exitOK || !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("node apply (%s) = %d, stderr %q, want an error containing %q", tt.name, code, errOut.String(), tt.want)
			}
		})
	}
}
