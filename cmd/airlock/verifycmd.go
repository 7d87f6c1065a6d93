package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/airlockdev/airlock/internal/config"
	"github.com/airlockdev/airlock/internal/verify"
)

// exitPositiveFailed is verify's exit code when no channel leaked but a
// positive check failed (DESIGN §3).
const exitPositiveFailed = 3

const verifySummary = "probe every escape channel from this node (or a pod's netns) and report leaks"

const verifyUsage = `
Makes real probes over every escape channel against the targets in
verify.targets (there are no built-in public targets: an unset target's
channels are reported "not tested"): TCP straight to an IP, an allowed SNI
aimed at a denied IP, the allowed name on a denied port, a denied name
through the node's resolver (A and TXT), DNS straight to an outside resolver
(UDP and TCP), UDP/443, IPv6, ICMP echo, the metadata address, HTTP with an
IP-literal Host, DoH; and the positive checks: the allowed name answers, and
registryImage comes through the node's containerd mirror configuration.
ICMPv6 of several types (neighbour discovery shapes among them) to
offLinkIPv6. An answer of any kind from the far side is a leak. Domain
fronting cannot be tested without TLS interception and is reported as such.
docs/verify.md explains each channel. The metadata row is a positive check
when node.allowedAddresses or node.hostAllowedAddresses let the probed side
(the node, or a pod with --netns) reach it.

--reflect-icmpv6 runs the far side of the ICMPv6 probes instead, on the
host that holds verify.targets.offLinkIPv6 (root): every probe it receives
is logged and sent back to its sender, until interrupted.

DNS probes use the nameserver in ROOT/etc/resolv.conf (or airlock's
systemd-resolved drop-in), else node.dns; never the machine's resolver.
With several DNS servers there, or several node.registry replicas, each
replica gets a positive row of its own (dns-replica, registry-replica):
a dead replica fails its row.
--root defaults to node.root. --netns needs root.

Exit 0 when nothing leaked and every positive check passed, 1 on any leak
(or an error), 3 when nothing leaked but a positive check failed.

Example:
  airlock verify --config /etc/airlock/airlock.yaml
  airlock verify --config airlock.yaml --netns cni-1234 --json --timeout 5s
  airlock verify --reflect-icmpv6        # on the far side`

var verifyCmd = command{summary: verifySummary, usage: verifyUsage, run: runVerify}

func runVerify(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("verify", verifySummary, verifyUsage, stderr)
	root := fs.String("root", "", "node root `DIR` the resolver and containerd config are read under (default: node.root)")
	netns := fs.String("netns", "", "probe from the network namespace `NAME` (under /run/netns), e.g. a pod's")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	timeout := fs.Duration("timeout", verify.DefaultTimeout, "per-probe `timeout` (positive checks get three times it)")
	reflector := fs.Bool("reflect-icmpv6", false, "run the far side of the ICMPv6 probes (answer each probe received) until interrupted")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "airlock verify: unexpected argument %q; see 'airlock verify --help'\n", fs.Arg(0))
		return exitUsage
	}
	if *timeout <= 0 || *timeout > 5*time.Minute {
		fmt.Fprintln(stderr, "airlock verify: --timeout must be between 1ns and 5m")
		return exitUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFinding
	}
	log, _, err := newLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		fmt.Fprintf(stderr, "airlock verify: %v\n", err)
		return exitFinding
	}
	opt := verify.Options{Root: cfg.Node.Root, NodeDNS: cfg.Node.DNS, Netns: *netns, Timeout: *timeout, Log: log, Reaches: cfg.Node.Reaches,
		Registries: cfg.Node.Registry, RegistryTLS: cfg.Registry.TLS.Enabled() || cfg.Node.RegistryCAFile != "", RegistryCAFile: cfg.Node.RegistryCAFile,
		ContainerdConfig: cfg.Node.ContainerdConfig, SandboxImage: cfg.Node.SandboxImage}
	opt.RegistriesConf, opt.DockerDaemonConfig = cfg.Node.RegistriesConf, cfg.Node.DockerDaemonConfig
	if *root != "" {
		opt.Root = *root
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *reflector {
		if *netns != "" || *asJSON {
			fmt.Fprintln(stderr, "airlock verify: --reflect-icmpv6 takes no --netns or --json (run it in the far side's namespace)")
			return exitUsage
		}
		if err := verify.ReflectICMPv6(ctx, log); err != nil {
			fmt.Fprintf(stderr, "airlock verify: %v\n", err)
			return exitFinding
		}
		return exitOK
	}
	rep, err := verify.Run(ctx, cfg.Verify.Targets, opt)
	if err != nil {
		fmt.Fprintf(stderr, "airlock verify: %v\n", err)
		return exitFinding
	}
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "airlock verify: %v\n", err)
		return exitFinding
	}
	switch rep.Verdict() {
	case verify.Leaked:
		return exitFinding
	case verify.PositiveFailed:
		return exitPositiveFailed
	}
	return exitOK
}
