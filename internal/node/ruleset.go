package node

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Table is the nftables table airlock node owns (family inet: IPv4 and
// IPv6 in one table). Nothing else in the ruleset is touched.
const Table = "airlock_node"

// RulesetInput is what the node's packet rules depend on.
type RulesetInput struct {
	Outbound OutboundType
	// Registry stays reachable over TCP (zero: not set).
	Registry netip.AddrPort
	// DNS stays reachable over UDP and TCP (zero: not set).
	DNS netip.AddrPort
	// Gateway is the next hop that traffic may leave through under
	// userDefinedRouting.
	Gateway netip.Addr
	// Allowed are node.allowedAddresses.
	Allowed []netip.Prefix
}

// chain is one chain of the ruleset: base chains carry a hook line.
type chain struct {
	name  string
	hook  string
	rules []string
}

// HasRules reports whether the outbound type installs packet rules.
func (o OutboundType) HasRules() bool {
	return o == OutboundBlock || o == OutboundUserDefinedRouting
}

// chains builds the ruleset for in; nil when the outbound type has no
// packet rules. The egress chain is shared by output (the node's own
// traffic) and forward (what it routes for pods).
func chains(in RulesetInput) []chain {
	if !in.Outbound.HasRules() {
		return nil
	}
	v4, v6 := allowedByFamily(in.Allowed)
	egress := []string{
		`ct state established,related accept comment "replies and flows already allowed"`,
		`ct state invalid counter drop comment "not part of any flow"`,
		`icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept comment "IPv6 neighbour discovery"`,
	}
	if len(v4) > 0 {
		egress = append(egress, `ip daddr @allowed_v4 accept comment "node.allowedAddresses"`)
	}
	if len(v6) > 0 {
		egress = append(egress, `ip6 daddr @allowed_v6 accept comment "node.allowedAddresses"`)
	}
	if in.Registry.IsValid() {
		egress = append(egress, fmt.Sprintf(`%s daddr %s tcp dport %d accept comment "airlock registry (node.registry)"`, ipFamily(in.Registry.Addr()), in.Registry.Addr(), in.Registry.Port()))
	}
	if in.DNS.IsValid() {
		egress = append(egress, fmt.Sprintf(`%s daddr %s meta l4proto { tcp, udp } th dport %d accept comment "airlock DNS (node.dns)"`, ipFamily(in.DNS.Addr()), in.DNS.Addr(), in.DNS.Port()))
	}
	if in.Outbound == OutboundUserDefinedRouting && in.Gateway.IsValid() {
		egress = append(egress, fmt.Sprintf(`rt %s nexthop %s accept comment "userDefinedRouting: leaves through the gateway host (node.gateway)"`, ipFamily(in.Gateway), in.Gateway))
	}
	egress = append(egress, `counter drop comment "everything else, IPv4 and IPv6"`)
	return []chain{
		{name: "output", hook: "type filter hook output priority filter; policy drop;", rules: []string{
			`oifname "lo" accept comment "loopback"`,
			`jump egress`,
		}},
		{name: "forward", hook: "type filter hook forward priority filter; policy drop;", rules: []string{
			`jump egress`,
		}},
		{name: "egress", rules: egress},
	}
}

func ipFamily(a netip.Addr) string {
	if a.Is4() {
		return "ip"
	}
	return "ip6"
}

// sets returns the named interval sets of allowed addresses, by family.
func sets(in RulesetInput) [][2]string {
	v4, v6 := allowedByFamily(in.Allowed)
	var out [][2]string
	if len(v4) > 0 {
		out = append(out, [2]string{"allowed_v4", "type ipv4_addr; flags interval; auto-merge; elements = { " + strings.Join(dedup(v4), ", ") + " }"})
	}
	if len(v6) > 0 {
		out = append(out, [2]string{"allowed_v6", "type ipv6_addr; flags interval; auto-merge; elements = { " + strings.Join(dedup(v6), ", ") + " }"})
	}
	return out
}

// allowedByFamily returns the allowed prefixes (masked, as text), sorted,
// IPv4 and IPv6 apart.
func allowedByFamily(allowed []netip.Prefix) (v4, v6 []string) {
	for _, p := range allowed {
		if p.Addr().Is4() {
			v4 = append(v4, p.Masked().String())
		} else {
			v6 = append(v6, p.Masked().String())
		}
	}
	sort.Strings(v4)
	sort.Strings(v6)
	return v4, v6
}

func dedup(s []string) []string {
	out := s[:0:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Ruleset renders the text `nft -f` loads for in. It declares, deletes and
// recreates airlock's table in one transaction, so the table is replaced
// atomically whatever state it was in; for outbound types without packet
// rules the text only removes the table.
func Ruleset(in RulesetInput) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# airlock node (outboundType %s): written by `airlock node apply`; do not edit.\n", in.Outbound)
	fmt.Fprintf(&b, "table inet %s\n", Table)
	fmt.Fprintf(&b, "delete table inet %s\n", Table)
	cs := chains(in)
	if cs == nil {
		return b.String()
	}
	fmt.Fprintf(&b, "table inet %s {\n", Table)
	for _, s := range sets(in) {
		fmt.Fprintf(&b, "\tset %s {\n\t\t%s\n\t}\n", s[0], s[1])
	}
	for _, c := range cs {
		fmt.Fprintf(&b, "\tchain %s {\n", c.name)
		if c.hook != "" {
			fmt.Fprintf(&b, "\t\t%s\n", c.hook)
		}
		for _, r := range c.rules {
			fmt.Fprintf(&b, "\t\t%s\n", r)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// RuleCounts is the number of rules per chain the ruleset for in holds
// (nil when it has none).
func RuleCounts(in RulesetInput) map[string]int {
	cs := chains(in)
	if cs == nil {
		return nil
	}
	m := make(map[string]int, len(cs))
	for _, c := range cs {
		m[c.name] = len(c.rules)
	}
	return m
}
