package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"text/tabwriter"

	"github.com/airlockdev/airlock/internal/config"
	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/policy"
)

const policyCheckSummary = "validate the policy section and show its warnings"

const policyCheckUsage = `
Decodes FILE (or --config) strictly, validates every rule with its position
(duplicate names or priorities, bad CIDRs, ports, protocols, wildcards,
unknown FQDN tags) and compiles the policy. Warnings (tag entries skipped for
want of policy.location) are printed. Exit 0 when valid, 1 when not.

Example:
  airlock policy check /etc/airlock/airlock.yaml`

var policyCheckCmd = command{summary: policyCheckSummary, usage: policyCheckUsage, run: runPolicyCheck}

func runPolicyCheck(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("policy check", policyCheckSummary, policyCheckUsage, stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	path := *cfgPath
	if fs.NArg() == 1 && path == "" {
		path = fs.Arg(0)
	} else if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "airlock policy check: give one FILE; see 'airlock policy check --help'")
		return exitUsage
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return exitFinding
	}
	pol, err := policy.Compile(cfg.Policy)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return exitFinding
	}
	for _, w := range pol.Warnings() {
		fmt.Fprintf(stdout, "warning: %v\n", w)
	}
	n := 0
	for _, g := range cfg.Policy.RuleCollectionGroups {
		for _, c := range g.RuleCollections {
			n += len(c.Rules)
		}
	}
	fmt.Fprintf(stdout, "%s: policy ok: %d groups, %d rules\n", describeConfig(path), len(cfg.Policy.RuleCollectionGroups), n)
	return exitOK
}

const policyExplainSummary = "show which rule decides a flow, and every rule tried"

const policyExplainUsage = `
Decides one flow the way the gateway would (DNAT, then network, then
application rules; group then collection priority; first match; no match is
deny) and prints the decision with the rules tried and why each did or did not
match. --sni makes it a TLS flow with that name, --host an HTTP one; without
either it is a plain TCP/UDP flow to HOST:PORT (an IP, or a name matched by
FQDN network rules as if airlock DNS had answered it).

Example:
  airlock policy explain --src 10.42.1.7 --dst 20.1.2.3:443 --proto tcp --sni mcr.microsoft.com
  airlock policy explain --src 10.42.1.7 --dst ntp.ubuntu.com:123 --proto udp`

var policyExplainCmd = command{summary: policyExplainSummary, usage: policyExplainUsage, run: runPolicyExplain}

func runPolicyExplain(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("policy explain", policyExplainSummary, policyExplainUsage, stderr)
	src := fs.String("src", "", "source `IP` of the flow (required)")
	dst := fs.String("dst", "", "destination `HOST:PORT` (required)")
	proto := fs.String("proto", "tcp", "tcp, udp or icmp")
	sni := fs.String("sni", "", "TLS server `NAME` (an https flow)")
	host := fs.String("host", "", "HTTP Host `NAME` (an http flow)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "airlock policy explain: %s; see 'airlock policy explain --help'\n", msg)
		return exitUsage
	}
	if *src == "" || *dst == "" {
		return usage("--src and --dst are required")
	}
	if *sni != "" && *host != "" {
		return usage("give --sni or --host, not both")
	}
	var f policy.Flow
	var err error
	if f.Src, err = netip.ParseAddr(*src); err != nil {
		return usage(fmt.Sprintf("--src %q is not an IP address", *src))
	}
	if f.Proto, err = policy.ParseProto(*proto); err != nil {
		return usage(err.Error())
	}
	h, p, err := net.SplitHostPort(*dst)
	if err != nil {
		return usage(fmt.Sprintf("--dst %q is not HOST:PORT", *dst))
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return usage(fmt.Sprintf("--dst port %q is not a number", p))
	}
	if a, err := netip.ParseAddr(h); err == nil {
		f.Dst = netip.AddrPortFrom(a, uint16(port))
	} else {
		n, err := dnsname.Parse(h)
		if err != nil {
			return usage(fmt.Sprintf("--dst host: %v", err))
		}
		// A name stands for "an address airlock DNS answered for it".
		f.Dst = netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port))
		f.DstNames = []dnsname.Name{n}
	}
	for _, s := range []struct {
		v   string
		app policy.App
	}{{*sni, policy.AppHTTPS}, {*host, policy.AppHTTP}} {
		if s.v == "" {
			continue
		}
		if f.Name, err = dnsname.Parse(s.v); err != nil {
			return usage(err.Error())
		}
		f.App = s.app
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFinding
	}
	pol, err := policy.Compile(cfg.Policy)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFinding
	}
	pol.DecideExplain(f).WriteTo(stdout)
	return exitOK
}

const policyTagsSummary = "list the built-in FQDN tags, or one tag's entries with their sources"

const policyTagsUsage = `
FQDN tags are embedded, versioned data; every entry cites its public source.
Without NAME: one line per tag. With NAME: every entry (name, protocol,
port, purpose, source). <location> is expanded from policy.location.

Example:
  airlock policy tags
  airlock policy tags AzureKubernetesService`

var policyTagsCmd = command{summary: policyTagsSummary, usage: policyTagsUsage, run: runPolicyTags}

func runPolicyTags(args []string, stdout, stderr io.Writer) int {
	fs, _ := newFlags("policy tags", policyTagsSummary, policyTagsUsage, stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	if fs.NArg() == 0 {
		fmt.Fprintln(tw, "TAG\tVERSION\tENTRIES\tSOURCE")
		for _, t := range policy.Tags() {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", t.Name, t.Version, len(t.Entries), t.Source)
		}
		return exitOK
	}
	t, ok := policy.Tag(fs.Arg(0))
	if !ok {
		tw.Flush()
		fmt.Fprintf(stderr, "airlock policy tags: no tag %q; run 'airlock policy tags' for the list\n", fs.Arg(0))
		return exitUsage
	}
	fmt.Fprintf(tw, "%s %s — %s\nsource: %s (%s)\n\n", t.Name, t.Version, t.Description, t.Source, t.SourceSnapshot)
	fmt.Fprintln(tw, "FQDN\tPROTOCOL\tPORT\tPURPOSE")
	for _, e := range t.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", e.FQDN, e.Protocol, e.Port, e.Purpose)
	}
	return exitOK
}
