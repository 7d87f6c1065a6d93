package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/airlockdev/airlock/internal/config"
	"github.com/airlockdev/airlock/internal/egress"
	"github.com/airlockdev/airlock/internal/hostfw"
	"github.com/airlockdev/airlock/internal/policy"
)

const gatewayRulesSummary = "install the gateway host's interception (nftables), or print it"

const gatewayRulesUsage = `
On the gateway host that nodes route through (outboundType
userDefinedRouting), redirects forwarded tcp/80 and tcp/443 to
gateway.transparentListen, DNS (udp and tcp 53) to dns.listen when it is set,
the TCP ports of network allow rules to gateway.l4Listen (TPROXY, with the
policy routing it needs: fwmark 0xa1 → table 161, local), and drops every
other forwarded packet, IPv4 and IPv6. The rules live in
airlock's own nftables table (inet airlock_gateway), replaced atomically; the
rest of the ruleset is untouched. The ruleset is checked (nft -c) before
anything changes; if a later step fails, the routing rules and routes added
are removed again, so the host keeps its previous rules and routing. Needs
root. --dry-run prints the ruleset.
The listeners must accept redirected traffic: listen on a wildcard address or
on the gateway's address on the nodes' side.

Example:
  airlock gateway rules --config /etc/airlock/airlock.yaml --dry-run
  airlock gateway rules --config /etc/airlock/airlock.yaml`

var gatewayRulesCmd = command{summary: gatewayRulesSummary, usage: gatewayRulesUsage, run: runGatewayRules}

func runGatewayRules(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("gateway rules", gatewayRulesSummary, gatewayRulesUsage, stderr)
	dry := fs.Bool("dry-run", false, "print the ruleset instead of installing it")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFinding
	}
	tp, err := portOf(cfg.Gateway.TransparentListen)
	if err != nil || tp == 0 {
		fmt.Fprintln(stderr, "airlock gateway rules: set gateway.transparentListen (host:port with a fixed port) in the config")
		return exitUsage
	}
	in := egress.RulesInput{TransparentPort: tp}
	if cfg.DNS.Listen != "" {
		if in.DNSPort, err = portOf(cfg.DNS.Listen); err != nil || in.DNSPort == 0 {
			fmt.Fprintln(stderr, "airlock gateway rules: dns.listen needs a fixed port")
			return exitUsage
		}
	}
	if cfg.Gateway.L4Listen != "" {
		if in.L4Port, err = portOf(cfg.Gateway.L4Listen); err != nil || in.L4Port == 0 {
			fmt.Fprintln(stderr, "airlock gateway rules: gateway.l4Listen needs a fixed port")
			return exitUsage
		}
		pol, err := policy.Compile(cfg.Policy)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFinding
		}
		in.L4Ports = pol.NetworkPorts()
	}
	if *dry {
		io.WriteString(stdout, egress.Ruleset(in))
		return exitOK
	}
	if err := egress.InstallRules(context.Background(), hostfw.Exec{}, in); err != nil {
		fmt.Fprintf(stderr, "airlock gateway rules: %v\n", err)
		return exitFinding
	}
	dns := "no DNS redirect (dns.listen is empty)"
	if in.DNSPort != 0 {
		dns = fmt.Sprintf("DNS to :%d", in.DNSPort)
	}
	fmt.Fprintf(stdout, "installed table inet %s: tcp/80,443 to :%d, %s, forward drop\n", egress.RulesTable, tp, dns)
	return exitOK
}

func portOf(addr string) (uint16, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(p, 10, 16)
	return uint16(n), err
}
