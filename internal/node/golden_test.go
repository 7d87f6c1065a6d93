package node

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s =\n%s\nwant (%s)\n%s", name, got, path, want)
	}
}

func TestRulesetGolden(t *testing.T) {
	reg := netip.MustParseAddrPort("10.42.2.4:5000")
	dns := netip.MustParseAddrPort("10.42.2.4:53")
	allowed := []netip.Prefix{netip.MustParsePrefix("10.42.0.0/16"), netip.MustParsePrefix("fdaa:42::/48"), netip.MustParsePrefix("10.42.7.7/16")}
	hostOnly := []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32"), netip.MustParsePrefix("168.63.129.16/32"), netip.MustParsePrefix("fd00:ec2::254/128")}
	tests := []struct {
		name string
		in   RulesetInput
	}{
		{"ruleset-block", RulesetInput{Outbound: OutboundBlock, Registry: []netip.AddrPort{reg}, DNS: []netip.AddrPort{dns}, Allowed: allowed}},
		{"ruleset-block-minimal", RulesetInput{Outbound: OutboundBlock, Registry: []netip.AddrPort{reg}}},
		{"ruleset-udr", RulesetInput{Outbound: OutboundUserDefinedRouting, Registry: []netip.AddrPort{reg}, DNS: []netip.AddrPort{dns}, Gateway: netip.MustParseAddr("10.42.2.1"), Allowed: allowed}},
		{"ruleset-udr-v6", RulesetInput{Outbound: OutboundUserDefinedRouting, Registry: []netip.AddrPort{netip.MustParseAddrPort("[fdaa:42::4]:5000")}, DNS: []netip.AddrPort{netip.MustParseAddrPort("[fdaa:42::4]:53")}, Gateway: netip.MustParseAddr("fdaa:42::1")}},
		{"ruleset-block-host-only", RulesetInput{Outbound: OutboundBlock, Registry: []netip.AddrPort{reg}, DNS: []netip.AddrPort{dns}, Allowed: allowed, HostAllowed: hostOnly}},
		{"ruleset-block-pod-link-local", RulesetInput{Outbound: OutboundBlock, Registry: []netip.AddrPort{reg}, Allowed: append(allowed, netip.MustParsePrefix("169.254.169.254/32")), PodLinkLocal: true}},
		{"ruleset-none", RulesetInput{Outbound: OutboundNone, Registry: []netip.AddrPort{reg}, DNS: []netip.AddrPort{dns}, Allowed: allowed}},
		{"ruleset-block-replicas", RulesetInput{Outbound: OutboundBlock, Allowed: allowed,
			Registry: []netip.AddrPort{reg, netip.MustParseAddrPort("10.42.2.5:5000"), netip.MustParseAddrPort("[fdaa:42::6]:5000")},
			DNS:      []netip.AddrPort{dns, netip.MustParseAddrPort("10.42.2.5:53")}}},
		{"ruleset-loadBalancer", RulesetInput{Outbound: OutboundLoadBalancer, Registry: []netip.AddrPort{reg}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden(t, tt.name, Ruleset(tt.in))
		})
	}
}

func TestHostsTOMLGolden(t *testing.T) {
	tests := []struct {
		name string
		m    Mirror
		e    MirrorEndpoint
	}{
		{"hosts-path-style", Mirror{Upstream: "mcr.microsoft.com", Prefix: "aks-managed-repository"}, MirrorEndpoint{Registries: []string{"10.42.2.4:5000"}}},
		{"hosts-mirror-style", Mirror{Upstream: "docker.io"}, MirrorEndpoint{Registries: []string{"10.42.2.4:5000"}}},
		{"hosts-tls", Mirror{Upstream: "mcr.microsoft.com", Prefix: "aks-managed-repository"}, MirrorEndpoint{Registries: []string{"10.42.2.4:5000"}, TLS: true, CAFile: "/etc/airlock/registry-ca.pem"}},
		{"hosts-replicas", Mirror{Upstream: "mcr.microsoft.com", Prefix: "aks-managed-repository"}, MirrorEndpoint{Registries: []string{"10.42.2.4:5000", "10.42.2.5:5000"}, TLS: true, CAFile: "/etc/airlock/registry-ca.pem"}},
		{"hosts-replicas-mirror-style", Mirror{Upstream: "docker.io"}, MirrorEndpoint{Registries: []string{"10.42.2.4:5000", "10.42.2.5:5000", "[fdaa:42::6]:5000"}}},
		{"hosts-v6", Mirror{Upstream: "quay.io", Prefix: "quay"}, MirrorEndpoint{Registries: []string{"[fdaa:42::4]:5000"}, TLS: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden(t, tt.name, HostsTOML(tt.m, tt.e))
		})
	}
}
