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
	// Registry are the registry replicas, each reachable over TCP (empty:
	// not set).
	Registry []netip.AddrPort
	// DNS are the DNS replicas, each reachable over UDP and TCP (empty:
	// not set).
	DNS []netip.AddrPort
	// Gateway is the next hop that traffic may leave through under
	// userDefinedRouting.
	Gateway netip.Addr
	// Allowed are node.allowedAddresses: the node and its pods reach them,
	// pods not their link-local part unless PodLinkLocal.
	Allowed []netip.Prefix
	// HostAllowed are node.hostAllowedAddresses: only the node reaches
	// them; pods' new flows to them are dropped even where Allowed covers
	// them.
	HostAllowed []netip.Prefix
	// PodLinkLocal is node.podLinkLocalAccess Allowed: pods may reach the
	// link-local addresses in Allowed. False: pods reach no link-local
	// address at all.
	PodLinkLocal bool
}

// Link-local destinations pods never reach unless PodLinkLocal: the cloud
// metadata services (169.254.169.254) and every other link-local address.
var (
	linkLocal4 = netip.MustParsePrefix("169.254.0.0/16")
	linkLocal6 = netip.MustParsePrefix("fe80::/10")
)

// IsLinkLocal reports whether p overlaps the link-local ranges pods may
// not reach unless node.podLinkLocalAccess is Allowed.
func IsLinkLocal(p netip.Prefix) bool {
	return p.Overlaps(linkLocal4) || p.Overlaps(linkLocal6)
}

// rule is one line of a chain. why, when set, is written on its own
// comment line above the rule in the rendered text (nft keeps a rule's
// own comment to 128 bytes, too short for a reason). A rule with only why
// is a comment about the chain and is not counted.
type rule struct {
	text string
	why  string
}

// chain is one chain of the ruleset: base chains carry a hook line.
type chain struct {
	name  string
	hook  string
	rules []rule
}

// HasRules reports whether the outbound type installs packet rules.
func (o OutboundType) HasRules() bool {
	return o == OutboundBlock || o == OutboundUserDefinedRouting
}

// chains builds the ruleset for in; nil when the outbound type has no
// packet rules. output (the node's own traffic) and forward (what it
// routes for its pods) are separate base chains: only output accepts
// neighbour discovery, MLD and node.hostAllowedAddresses; only forward
// drops link-local destinations. Both end in the shared chain egress,
// what the node and its pods may both reach.
func chains(in RulesetInput) []chain {
	if !in.Outbound.HasRules() {
		return nil
	}
	return []chain{
		{name: "output", hook: "type filter hook output priority filter; policy drop;", rules: outputRules(in)},
		{name: "forward", hook: "type filter hook forward priority filter; policy drop;", rules: forwardRules(in)},
		{name: "egress", rules: egressRules(in)},
	}
}

// established accepts the packets of flows already allowed, in output
// (why: ICMP it lets through) and forward. It is the one rule through
// which ICMP and ICMPv6 other than neighbour discovery and MLD pass.
func established(why string) rule {
	return rule{
		text: `ct state established,related accept comment "replies and flows already allowed"`,
		why: "ICMP and ICMPv6 only as part of a flow already allowed: destination unreachable, packet too big (path MTU discovery), " +
			"time exceeded and parameter problem about it, and " + why + "; never a new echo request or any other type",
	}
}

var invalid = rule{text: `ct state invalid counter drop comment "not part of any flow"`}

// ndRules are the neighbour discovery (RFC 4861) and MLD (RFC 3810)
// messages the node's own stack needs. Neighbour discovery must carry hop
// limit 255 (a receiver drops anything else, so it never crosses a router)
// and goes to link-scope multicast or link-local unicast, which no router
// forwards. The unicast NS and NA of neighbour unreachability detection
// and of answers to a neighbour that uses its global address (a pod on its
// veth) go to on-link global addresses: those are accepted only from the
// kernel's own ND socket, which sends on the neighbour's link whatever the
// routing table says, never from a process, whose packet would follow the
// routing table off the link. RA (134) and redirect (137) are a router's
// to send, not a node's: dropped.
func ndRules() []rule {
	return []rule{
		{text: `icmpv6 type nd-router-solicit ip6 hoplimit 255 ip6 daddr ff02::2 accept comment "ND router solicitation"`,
			why: "type 133: asks routers for an advertisement (RFC 4861 6.3.7); only to all-routers ff02::2, link scope, hop limit 255"},
		{text: `icmpv6 type nd-neighbor-solicit ip6 hoplimit 255 ip6 daddr ff02::1:ff00:0/104 accept comment "ND address resolution and DAD"`,
			why: "type 135: address resolution and duplicate address detection (RFC 4861 7.2.2, RFC 4862 5.4.2); only to a solicited-node group, link scope"},
		{text: `icmpv6 type nd-neighbor-advert ip6 hoplimit 255 ip6 daddr ff02::1 accept comment "ND unsolicited advertisement"`,
			why: "type 136: unsolicited advertisement and the answer to a DAD probe (RFC 4861 7.2.6, 7.2.4); only to all-nodes ff02::1, link scope"},
		{text: `icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 ip6 daddr fe80::/10 accept comment "ND with link-local neighbours"`,
			why: "types 135, 136: unreachability probes and solicited answers to link-local neighbours (RFC 4861 7.3, 7.2.4); link-local unicast is never routed"},
		{text: `icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } meta skuid >= 0 counter drop comment "ND from a process to any other address"`,
			why: "types 135, 136 from a process's socket (a raw socket shapes any payload as ND) to a global address: it would follow the routing table off the link"},
		{text: `icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept comment "kernel ND with on-link global neighbours"`,
			why: "types 135, 136 from the kernel (no process socket): unreachability probes and answers to neighbours using global addresses, " +
				"such as pods on their veths; the kernel sends them on the neighbour's link only"},
		{text: `icmpv6 type { mld-listener-report, mld-listener-done, mld2-listener-report } ip6 hoplimit 1 ip6 daddr ff02::/16 accept comment "MLD reports"`,
			why: "types 131, 132, 143: multicast listener reports (RFC 3810 5.2, RFC 2710) for the solicited-node groups, so MLD-snooping switches " +
				"deliver neighbour solicitations; hop limit 1 to link-scope ff02::/16, never routed"},
	}
}

func outputRules(in RulesetInput) []rule {
	rs := []rule{{text: `oifname "lo" accept comment "loopback"`}, established("echo replies to pings this node received (its input is not filtered)"), invalid}
	rs = append(rs, ndRules()...)
	v4, v6 := prefixesByFamily(in.HostAllowed)
	if len(v4) > 0 {
		rs = append(rs, rule{text: `ip daddr @host_allowed_v4 accept comment "node.hostAllowedAddresses: this node only"`})
	}
	if len(v6) > 0 {
		rs = append(rs, rule{text: `ip6 daddr @host_allowed_v6 accept comment "node.hostAllowedAddresses: this node only"`})
	}
	rs = append(rs, rule{text: `jump egress`, why: "what the node and its pods may both reach"})
	return rs
}

func forwardRules(in RulesetInput) []rule {
	var rs []rule
	if !in.PodLinkLocal {
		// Before established: a pod's flow to a link-local address opened
		// under an earlier ruleset ends too.
		rs = append(rs,
			rule{text: fmt.Sprintf(`ip daddr %s counter drop comment "link-local: not for pods (node.podLinkLocalAccess None)"`, linkLocal4),
				why: "cloud metadata (169.254.169.254) and every other link-local address: never for pods, whatever node.allowedAddresses says"},
			rule{text: fmt.Sprintf(`ip6 daddr %s counter drop comment "link-local: not for pods (node.podLinkLocalAccess None)"`, linkLocal6)})
	}
	rs = append(rs, established("echo replies to pings forwarded to a pod (a pod range in node.allowedAddresses)"), invalid)
	v4, v6 := prefixesByFamily(in.HostAllowed)
	if len(v4) > 0 {
		rs = append(rs, rule{text: `ip daddr @host_allowed_v4 counter drop comment "node.hostAllowedAddresses: not for pods"`})
	}
	if len(v6) > 0 {
		rs = append(rs, rule{text: `ip6 daddr @host_allowed_v6 counter drop comment "node.hostAllowedAddresses: not for pods"`})
	}
	rs = append(rs,
		rule{why: "no neighbour discovery or MLD is accepted here: a forwarded packet's hop limit is already decremented below 255, " +
			"and pods' ND with the node goes through input and output"},
		rule{text: `jump egress`, why: "what the node and its pods may both reach"})
	return rs
}

func egressRules(in RulesetInput) []rule {
	var rs []rule
	v4, v6 := prefixesByFamily(in.Allowed)
	if len(v4) > 0 {
		rs = append(rs, rule{text: `ip daddr @allowed_v4 accept comment "node.allowedAddresses"`})
	}
	if len(v6) > 0 {
		rs = append(rs, rule{text: `ip6 daddr @allowed_v6 accept comment "node.allowedAddresses"`})
	}
	for i, ap := range in.Registry {
		rs = append(rs, rule{text: fmt.Sprintf(`%s daddr %s tcp dport %d accept comment "airlock registry (%s)"`, ipFamily(ap.Addr()), ap.Addr(), ap.Port(), entryKey("node.registry", i, len(in.Registry)))})
	}
	for i, ap := range in.DNS {
		rs = append(rs, rule{text: fmt.Sprintf(`%s daddr %s meta l4proto { tcp, udp } th dport %d accept comment "airlock DNS (%s)"`, ipFamily(ap.Addr()), ap.Addr(), ap.Port(), entryKey("node.dns", i, len(in.DNS)))})
	}
	if in.Outbound == OutboundUserDefinedRouting && in.Gateway.IsValid() {
		rs = append(rs, rule{text: fmt.Sprintf(`rt %s nexthop %s accept comment "userDefinedRouting: leaves through the gateway host (node.gateway)"`, ipFamily(in.Gateway), in.Gateway),
			why: "every protocol, ICMP included: the gateway host decides (its forward chain accepts no ICMP type)"})
	}
	rs = append(rs, rule{text: `counter drop comment "everything else, IPv4 and IPv6"`})
	return rs
}

func ipFamily(a netip.Addr) string {
	if a.Is4() {
		return "ip"
	}
	return "ip6"
}

// sets returns the named interval sets of allowed addresses, by family.
func sets(in RulesetInput) [][2]string {
	var out [][2]string
	add := func(name, typ string, elems []string) {
		if len(elems) > 0 {
			out = append(out, [2]string{name, "type " + typ + "; flags interval; auto-merge; elements = { " + strings.Join(dedup(elems), ", ") + " }"})
		}
	}
	v4, v6 := prefixesByFamily(in.Allowed)
	add("allowed_v4", "ipv4_addr", v4)
	add("allowed_v6", "ipv6_addr", v6)
	v4, v6 = prefixesByFamily(in.HostAllowed)
	add("host_allowed_v4", "ipv4_addr", v4)
	add("host_allowed_v6", "ipv6_addr", v6)
	return out
}

// prefixesByFamily returns prefixes (masked, as text), sorted, IPv4 and
// IPv6 apart.
func prefixesByFamily(prefixes []netip.Prefix) (v4, v6 []string) {
	for _, p := range prefixes {
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
			if r.why != "" {
				fmt.Fprintf(&b, "\t\t# %s\n", r.why)
			}
			if r.text != "" {
				fmt.Fprintf(&b, "\t\t%s\n", r.text)
			}
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
		for _, r := range c.rules {
			if r.text != "" {
				m[c.name]++
			}
		}
	}
	return m
}
