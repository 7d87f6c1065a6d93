package egress

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/airlockdev/airlock/internal/policy"
)

// RulesTable is the nftables table `airlock gateway rules` owns on the
// gateway host. Nothing else in the ruleset is touched.
const RulesTable = "airlock_gateway"

// RulesInput is what the gateway host's interception depends on.
type RulesInput struct {
	// TransparentPort receives forwarded tcp/80 and tcp/443
	// (gateway.transparentListen's port).
	TransparentPort uint16
	// DNSPort, when not 0, receives forwarded udp/53 and tcp/53 (dns.listen's
	// port): a node whose default route is the gateway cannot reach another
	// resolver.
	DNSPort uint16
	// L4Port, when not 0, receives (TPROXY) forwarded TCP and UDP to
	// L4Ports, the ports of network allow rules (gateway.l4Listen's port,
	// where a TCP and a UDP socket listen); tcp/80 and tcp/443 stay with
	// the transparent listener, port 53 with airlock DNS when DNSPort is
	// set, and udp/443 always goes to the L4 listener, so QUIC is denied
	// with a decision record unless a network rule allows it.
	L4Port  uint16
	L4Ports []policy.PortRange
}

// TPROXY marks intercepted packets with RulesMark, and policy routing sends
// marked packets to the local stack through table RulesTableID.
const (
	RulesMark    = 0xa1
	RulesTableID = 161
)

// l4Ports renders the ranges of proto's ports for a TPROXY rule: ranges
// plus the single ports in extra, merged, without the ports in skip; ""
// when none is left.
func l4Ports(ranges []policy.PortRange, proto policy.Proto, extra, skip []uint16) string {
	var rs []policy.PortRange
	for _, r := range ranges {
		if r.Proto == proto && r.From <= r.To {
			rs = append(rs, r)
		}
	}
	for _, p := range extra {
		rs = append(rs, policy.PortRange{Proto: proto, From: p, To: p})
	}
	slices.SortFunc(rs, func(a, b policy.PortRange) int { return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To)) })
	var merged []policy.PortRange
	for _, r := range rs {
		if n := len(merged); n > 0 && int(r.From) <= int(merged[n-1].To)+1 {
			merged[n-1].To = max(merged[n-1].To, r.To)
			continue
		}
		merged = append(merged, r)
	}
	skip = slices.Sorted(slices.Values(skip))
	var parts []string
	add := func(from, to int) {
		switch {
		case from > to:
		case from == to:
			parts = append(parts, strconv.Itoa(from))
		default:
			parts = append(parts, fmt.Sprintf("%d-%d", from, to))
		}
	}
	for _, r := range merged {
		from := int(r.From)
		for _, sp := range skip {
			if int(sp) >= from && sp <= r.To {
				add(from, int(sp)-1)
				from = int(sp) + 1
			}
		}
		add(from, int(r.To))
	}
	return strings.Join(parts, ", ")
}

// Ruleset renders the interception for a gateway host that nodes route
// through (DESIGN §4 userDefinedRouting): tcp/80 and tcp/443 arriving to be
// forwarded are redirected to the transparent listener (which keeps the
// original destination for SO_ORIGINAL_DST), DNS to airlock DNS, the TCP
// and UDP ports of network rules (and udp/443) are handed by TPROXY to the
// L4 listener, and every other forwarded packet is dropped. One inet table covers IPv4 and IPv6.
// The text declares, deletes and recreates the table, so `nft -f` replaces
// it atomically in one transaction, whatever state it was in; InstallRules
// checks it and loads it.
func Ruleset(in RulesInput) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# airlock gateway interception: written by `airlock gateway rules`; do not edit.\n")
	fmt.Fprintf(&b, "table inet %s\n", RulesTable)
	fmt.Fprintf(&b, "delete table inet %s\n", RulesTable)
	fmt.Fprintf(&b, "table inet %s {\n", RulesTable)
	b.WriteString("\tchain prerouting {\n")
	b.WriteString("\t\ttype nat hook prerouting priority dstnat; policy accept;\n")
	b.WriteString("\t\tfib daddr type local return comment \"traffic for the gateway itself is not intercepted\"\n")
	fmt.Fprintf(&b, "\t\tmeta l4proto tcp th dport { 80, 443 } counter redirect to :%d comment \"http and https to the transparent listener\"\n", in.TransparentPort)
	if in.DNSPort != 0 {
		fmt.Fprintf(&b, "\t\tmeta l4proto { tcp, udp } th dport 53 counter redirect to :%d comment \"every resolver is airlock DNS\"\n", in.DNSPort)
	}
	b.WriteString("\t}\n")
	if in.L4Port != 0 {
		// The DNS redirect (nat, dstnat) comes after TPROXY (mangle): a
		// network rule's range must not take port 53 from it.
		var skipTCP, skipUDP []uint16
		skipTCP = append(skipTCP, 80, 443)
		if in.DNSPort != 0 {
			skipTCP, skipUDP = append(skipTCP, 53), append(skipUDP, 53)
		}
		tcp := l4Ports(in.L4Ports, policy.ProtoTCP, nil, skipTCP)
		udp := l4Ports(in.L4Ports, policy.ProtoUDP, []uint16{443}, skipUDP)
		b.WriteString("\tchain intercept_l4 {\n")
		b.WriteString("\t\ttype filter hook prerouting priority mangle; policy accept;\n")
		b.WriteString("\t\tfib daddr type local return\n")
		if tcp != "" {
			fmt.Fprintf(&b, "\t\tmeta l4proto tcp th dport { %s } tproxy to :%d meta mark set 0x%x accept comment \"network-rule ports to the L4 listener\"\n", tcp, in.L4Port, RulesMark)
		}
		fmt.Fprintf(&b, "\t\tmeta l4proto udp th dport { %s } tproxy to :%d meta mark set 0x%x accept comment \"network-rule UDP ports, and udp/443 (QUIC: denied and logged unless a rule allows it), to the L4 listener\"\n", udp, in.L4Port, RulesMark)
		b.WriteString("\t}\n")
	}
	b.WriteString("\tchain forward {\n")
	b.WriteString("\t\ttype filter hook forward priority filter; policy drop;\n")
	b.WriteString(forwardICMPNote)
	b.WriteString("\t\tcounter comment \"nothing else is routed: flows leave through the gateway's listeners\"\n")
	b.WriteString("\t}\n")
	b.WriteString("}\n")
	return b.String()
}

// forwardICMPNote is the reason, written in the ruleset, why the forward
// chain accepts no ICMP or ICMPv6 type.
const forwardICMPNote = "\t\t# ICMP and ICMPv6: no type is forwarded. The listeners end every intercepted flow here, so its errors and echo replies " +
	"are the gateway's own, never routed; neighbour discovery with the nodes is link-local, never forwarded; anything else, " +
	"neighbour-discovery-shaped or not, would carry a node's data past the gateway\n"
