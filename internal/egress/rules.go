package egress

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
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
}

// Ruleset renders the interception for a gateway host that nodes route
// through (DESIGN §4 userDefinedRouting): tcp/80 and tcp/443 arriving to be
// forwarded are redirected to the transparent listener (which keeps the
// original destination for SO_ORIGINAL_DST), DNS to airlock DNS, and every
// other forwarded packet is dropped. One inet table covers IPv4 and IPv6.
// The text declares, deletes and recreates the table, so `nft -f` replaces
// it atomically in one transaction, whatever state it was in.
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
	b.WriteString("\tchain forward {\n")
	b.WriteString("\t\ttype filter hook forward priority filter; policy drop;\n")
	b.WriteString("\t\tcounter comment \"nothing else is routed: flows leave through the gateway's listeners\"\n")
	b.WriteString("\t}\n")
	b.WriteString("}\n")
	return b.String()
}

// ApplyRuleset loads text with `nft -f -` (one atomic transaction). The
// error carries nft's own message.
func ApplyRuleset(ctx context.Context, text string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(text)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("nft -f: %s (needs root and the nftables package; nothing was changed)", msg)
	}
	return nil
}
