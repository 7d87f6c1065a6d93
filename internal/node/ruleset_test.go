package node

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

// rulesetInputs are the shapes the structural tests check every rule of.
func rulesetInputs() map[string]RulesetInput {
	reg := netip.MustParseAddrPort("10.42.2.4:5000")
	allowed := []netip.Prefix{netip.MustParsePrefix("10.42.0.0/16"), netip.MustParsePrefix("fdaa:42::/48"), netip.MustParsePrefix("169.254.169.254/32"), netip.MustParsePrefix("fe80::/64")}
	host := []netip.Prefix{netip.MustParsePrefix("168.63.129.16/32"), netip.MustParsePrefix("fd00:ec2::254/128")}
	return map[string]RulesetInput{
		"block":                {Outbound: OutboundBlock, Registry: []netip.AddrPort{reg}, Allowed: allowed, HostAllowed: host},
		"block pod link-local": {Outbound: OutboundBlock, Registry: []netip.AddrPort{reg}, Allowed: allowed, PodLinkLocal: true},
		"udr":                  {Outbound: OutboundUserDefinedRouting, Registry: []netip.AddrPort{reg}, Gateway: netip.MustParseAddr("10.42.2.1"), Allowed: allowed, HostAllowed: host},
		"udr v6":               {Outbound: OutboundUserDefinedRouting, Registry: []netip.AddrPort{netip.MustParseAddrPort("[fdaa:42::4]:5000")}, Gateway: netip.MustParseAddr("fdaa:42::1")},
		"udr replicas": {Outbound: OutboundUserDefinedRouting, Registry: []netip.AddrPort{reg, netip.MustParseAddrPort("[fdaa:42::5]:5000")},
			DNS: []netip.AddrPort{netip.MustParseAddrPort("10.42.2.4:53"), netip.MustParseAddrPort("10.42.2.5:53")}, Gateway: netip.MustParseAddr("10.42.2.1"), Allowed: allowed},
	}
}

var (
	icmpWords  = regexp.MustCompile(`\bicmp(v6)?\b|established,related`)
	ndTypes    = regexp.MustCompile(`nd-router-solicit|nd-neighbor-solicit|nd-neighbor-advert|nd-router-advert|nd-redirect|\b13[3-7]\b`)
	linkScoped = regexp.MustCompile(`ip6 daddr (ff02::1|ff02::2|ff02::1:ff00:0/104|fe80::/10|ff02::/16) `)
)

// TestRulesetICMPReasons: every rule that lets ICMP or ICMPv6 through
// (by type, or as part of a flow) carries its reason, written above it.
func TestRulesetICMPReasons(t *testing.T) {
	for name, in := range rulesetInputs() {
		for _, c := range chains(in) {
			for _, r := range c.rules {
				if icmpWords.MatchString(r.text) && r.why == "" {
					t.Errorf("%s: chain %s: %q has no reason", name, c.name, r.text)
				}
			}
		}
	}
}

// TestRulesetNeighbourDiscoveryConfined: neighbour discovery is accepted
// only in output, only with hop limit 255, and only to a link-scope
// destination, except the kernel's own unicast ND, which must come after
// a rule dropping the same types from a process's socket. MLD only with
// hop limit 1 to ff02::/16. No other ICMPv6 type is accepted by type, and
// forward and egress accept no ICMPv6 type at all.
func TestRulesetNeighbourDiscoveryConfined(t *testing.T) {
	for name, in := range rulesetInputs() {
		for _, c := range chains(in) {
			processDropped := false
			for _, r := range c.rules {
				txt := r.text
				if !strings.Contains(txt, "icmpv6") && !strings.Contains(txt, "icmp ") {
					continue
				}
				accept := strings.HasSuffix(strings.SplitN(txt, " comment ", 2)[0], " accept")
				if c.name != "output" {
					t.Errorf("%s: chain %s matches ICMP by type: %q", name, c.name, txt)
					continue
				}
				switch {
				case !accept && strings.Contains(txt, "meta skuid") && strings.Contains(txt, "drop"):
					processDropped = true
				case !accept:
				case strings.Contains(txt, "mld"):
					if !strings.Contains(txt, "ip6 hoplimit 1 ") || !strings.Contains(txt, "ip6 daddr ff02::/16 ") || ndTypes.MatchString(txt) {
						t.Errorf("%s: MLD accepted beyond hop limit 1 to ff02::/16: %q", name, txt)
					}
				case ndTypes.MatchString(txt):
					if !strings.Contains(txt, "ip6 hoplimit 255 ") {
						t.Errorf("%s: ND accepted without hop limit 255: %q", name, txt)
					}
					if !linkScoped.MatchString(txt) && !processDropped {
						t.Errorf("%s: ND accepted to any destination before a process's ND is dropped: %q", name, txt)
					}
					if strings.Contains(txt, "router-advert") || strings.Contains(txt, "redirect") {
						t.Errorf("%s: a router's ND type accepted from a node: %q", name, txt)
					}
				default:
					t.Errorf("%s: ICMP type accepted that neighbour discovery and MLD do not need: %q", name, txt)
				}
			}
		}
	}
}

// TestRulesetNodeVersusPods: pods (forward) never reach link-local
// destinations unless PodLinkLocal, and never node.hostAllowedAddresses;
// both are dropped before forward reaches the shared chain. The node
// (output) reaches hostAllowedAddresses.
func TestRulesetNodeVersusPods(t *testing.T) {
	for name, in := range rulesetInputs() {
		var output, forward []string
		for _, c := range chains(in) {
			for _, r := range c.rules {
				switch c.name {
				case "output":
					output = append(output, r.text)
				case "forward":
					forward = append(forward, r.text)
				}
			}
		}
		jump := indexOf(forward, "jump egress")
		if jump < 0 {
			t.Fatalf("%s: forward does not end in the shared chain: %q", name, forward)
		}
		for _, want := range []string{"ip daddr 169.254.0.0/16 counter drop", "ip6 daddr fe80::/10 counter drop"} {
			i := indexOf(forward, want)
			switch {
			case in.PodLinkLocal && i >= 0:
				t.Errorf("%s: podLinkLocalAccess Allowed, yet forward has %q", name, forward[i])
			case !in.PodLinkLocal && (i < 0 || i > jump):
				t.Errorf("%s: forward lacks %q before the shared chain: %q", name, want, forward)
			case !in.PodLinkLocal && i > indexOf(forward, "ct state established"):
				t.Errorf("%s: %q comes after established: a pod's flow opened before apply would go on", name, want)
			}
		}
		if len(in.HostAllowed) == 0 {
			continue
		}
		for _, fam := range []string{"ip daddr @host_allowed_v4", "ip6 daddr @host_allowed_v6"} {
			if i := indexOf(forward, fam+" counter drop"); i < 0 || i > jump {
				t.Errorf("%s: forward lacks %q drop before the shared chain: %q", name, fam, forward)
			}
			if indexOf(output, fam+" accept") < 0 {
				t.Errorf("%s: output does not accept %q", name, fam)
			}
		}
	}
}

func indexOf(rules []string, prefix string) int {
	for i, r := range rules {
		if strings.HasPrefix(r, prefix) {
			return i
		}
	}
	return -1
}

func TestRuleCountsSkipComments(t *testing.T) {
	in := rulesetInputs()["block"]
	got := RuleCounts(in)
	text := Ruleset(in)
	lines := 0
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "type ") || strings.HasPrefix(l, "chain ") ||
			strings.HasPrefix(l, "set ") || strings.HasPrefix(l, "table ") || strings.HasPrefix(l, "delete ") || l == "}" {
			continue
		}
		lines++
	}
	if total := got["output"] + got["forward"] + got["egress"]; total != lines {
		t.Errorf("RuleCounts = %v (%d), want the %d rule lines of the ruleset", got, total, lines)
	}
}
