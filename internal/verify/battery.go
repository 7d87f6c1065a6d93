package verify

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// DefaultTimeout is the per-probe timeout when Options.Timeout is zero.
const DefaultTimeout = 3 * time.Second

// positiveBudget is how many timeouts a positive check may take: it
// resolves, connects and makes more than one request.
const positiveBudget = 3

// Options say where and how the battery runs.
type Options struct {
	// Root is the node's file system root: resolv.conf, the resolved
	// drop-in and containerd's certs.d are read under it. Default "/".
	Root string
	// NodeDNS is node.dns ("ip:port" each, one per replica), the
	// resolvers used when none is configured under Root. Empty: none.
	NodeDNS []string
	// Registries is node.registry ("ip:port" each): with several replicas
	// each gets a registry-replica row (GET /v2/). Empty or one: none (the
	// registry-image row covers a single registry).
	Registries []string
	// RegistryTLS says the registry serves https (registry.tls, or
	// node.registryCAFile set); RegistryCAFile is the CA it is checked
	// against, a path on the node (read under Root). Empty: system roots.
	RegistryTLS    bool
	RegistryCAFile string
	// Netns names a network namespace under /run/netns to probe from (a
	// pod's). Empty: the caller's namespace. Needs root.
	Netns string
	// Timeout bounds each escape probe; positive checks get three times
	// it. Default DefaultTimeout.
	Timeout time.Duration
	// ContainerdConfig is containerd's config.toml, a path on the node
	// (read under Root). Default DefaultContainerdConfig. When it or a
	// containerd binary is under Root, the containerd rows check the pull
	// path is pinned (containerd.go).
	ContainerdConfig string
	// SandboxImage is node.sandboxImage: containerd's pinned sandbox image
	// must be it. Empty: any pinned image.
	SandboxImage string
	// ContainerdVersion is `containerd --version` of the node's containerd.
	// Empty: run it when Root is "/", else unknown.
	ContainerdVersion string
	// RegistriesConf and DockerDaemonConfig are node.registriesConf and
	// node.dockerDaemonConfig, paths on the node (read under Root): the
	// CRI-O/podman and Docker rows check them (runtimes.go). Empty: only
	// the standard files.
	RegistriesConf, DockerDaemonConfig string
	// Log receives one debug record per probe. Nil: discarded.
	Log *slog.Logger
	// Reaches says whether the node's configuration lets the probed side
	// reach addr: the node itself (pod false, no Netns) or a pod (pod true,
	// probing from Netns). When it does for metadataAddress (the node's
	// node.hostAllowedAddresses, say), the metadata row is a positive
	// check, expected reachable. Nil: the metadata row always expects
	// blocked.
	Reaches func(addr netip.Addr, pod bool) bool
}

// probe is one row of the battery.
type probe struct {
	channel  string
	target   string
	expected Outcome
	// missing names the unset target keys that keep the probe from
	// running ("deniedAddress").
	missing []string
	// dns: the probe needs the node's resolver.
	dns    bool
	budget int // timeouts the probe may take; 0 means 1
	run    func(ctx context.Context) (Outcome, string)
}

// fixedPorts are the ports some channels always use on deniedAddress's
// IP. Tests on loopback replace them.
type fixedPorts struct {
	udp  int // the QUIC-like datagram
	http int // the IP-literal Host request
}

// Run probes every channel concurrently and returns the report. It fails
// only when the network namespace cannot be opened. Each probe is bounded
// by its timeout, so Run returns within three timeouts plus scheduling.
func Run(ctx context.Context, t Targets, opt Options) (Report, error) {
	return run(ctx, t, opt, fixedPorts{udp: 443, http: 80})
}

func run(ctx context.Context, t Targets, opt Options, ports fixedPorts) (Report, error) {
	if opt.Root == "" {
		opt.Root = "/"
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if t.DeniedPort == 0 {
		t.DeniedPort = DefaultDeniedPort
	}
	e := &env{res: findResolver(opt.Root, opt.NodeDNS), timeout: opt.Timeout}
	if opt.Netns != "" {
		ns, err := openNetns(opt.Netns)
		if err != nil {
			return Report{}, err
		}
		defer ns.close()
		e.ns = ns
	}
	b := &battery{t: t, e: e, root: opt.Root, ports: ports, reaches: opt.Reaches, pod: opt.Netns != "",
		registries: opt.Registries, registryTLS: opt.RegistryTLS, registryCA: opt.RegistryCAFile,
		registriesConf: opt.RegistriesConf, dockerDaemonConfig: opt.DockerDaemonConfig,
		containerdConfig: opt.ContainerdConfig, sandboxImage: opt.SandboxImage, containerdVersion: opt.ContainerdVersion}
	b.allowed = sync.OnceValue(func() allowedResult {
		actx, cancel := context.WithTimeout(ctx, positiveBudget*opt.Timeout)
		defer cancel()
		return b.reachAllowed(actx)
	})
	probes := b.probes()
	rows := make([]Row, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		rows[i] = Row{Channel: p.channel, Target: p.target, Expected: p.expected}
		switch {
		case len(p.missing) > 0:
			rows[i].Got, rows[i].Evidence = NotTested, "set verify.targets."+joinKeys(p.missing)
			continue
		case p.dns && !e.res.server.IsValid():
			rows[i].Got, rows[i].Evidence = NotTested, "no resolver for the node: "+e.res.source
			continue
		case p.run == nil:
			rows[i].Got, rows[i].Evidence = NotTestable, notTestable
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if e.ns != nil {
				// Sockets this goroutine opens itself belong to the
				// namespace; the thread is never unlocked.
				if err := e.ns.enter(); err != nil {
					rows[i].Got, rows[i].Evidence = NotTested, err.Error()
					return
				}
			}
			budget := max(p.budget, 1)
			pctx, cancel := context.WithTimeout(ctx, time.Duration(budget)*opt.Timeout)
			defer cancel()
			start := time.Now()
			rows[i].Got, rows[i].Evidence = p.run(pctx)
			opt.Log.Debug("verify probe", "channel", p.channel, "target", p.target, "got", string(rows[i].Got), "evidence", rows[i].Evidence, "duration", time.Since(start).String())
		}()
	}
	wg.Wait()
	return Report{Netns: opt.Netns, Resolver: e.res.String(), Rows: rows}, nil
}

func joinKeys(keys []string) string {
	s := keys[0]
	for _, k := range keys[1:] {
		s += " and verify.targets." + k
	}
	return s
}

// battery is one run's probes and what they share.
type battery struct {
	t       Targets
	e       *env
	root    string
	ports   fixedPorts
	allowed func() allowedResult // the allowed name reached normally, once
	reaches func(addr netip.Addr, pod bool) bool
	pod     bool // probing from a namespace (a pod's)
	// registries are node.registry's replicas; registryTLS and registryCA
	// say how to reach them.
	registries  []string
	registryTLS bool
	registryCA  string
	// registriesConf and dockerDaemonConfig are Options'.
	registriesConf, dockerDaemonConfig string
	// containerdConfig, sandboxImage and containerdVersion are Options'.
	containerdConfig, sandboxImage, containerdVersion string
}

// metadataExpected is Reachable when the node's configuration lets the
// probed side reach metadataAddress, else Blocked.
func (b *battery) metadataExpected() Outcome {
	if b.reaches == nil {
		return Blocked
	}
	ap, err := netip.ParseAddrPort(b.t.MetadataAddress)
	if err != nil || !b.reaches(ap.Addr().Unmap(), b.pod) {
		return Blocked
	}
	return Reachable
}

// need returns the keys among pairs (key, value) whose value is empty.
func need(pairs ...string) []string {
	var out []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			out = append(out, pairs[i])
		}
	}
	return out
}

// withPort replaces the port of "host:port".
func withPort(hostport string, port int) string {
	if hostport == "" {
		return ""
	}
	return net.JoinHostPort(hostOf(hostport), strconv.Itoa(port))
}

func (b *battery) probes() []probe {
	t := b.t
	denied, denied6 := t.DeniedAddress, t.DeniedAddress6
	ps := []probe{
		{channel: "tcp-ip", target: denied, missing: need("deniedAddress", denied),
			run: func(ctx context.Context) (Outcome, string) { return b.tcpToIP(ctx, denied) }},
		{channel: "tls-allowed-sni-denied-ip", target: denied, missing: need("deniedAddress", denied, "allowedName", t.AllowedName),
			budget: positiveBudget, run: b.allowedSNIToDeniedIP},
		{channel: "allowed-name-denied-port", target: withPort(t.AllowedName, int(t.DeniedPort)), missing: need("allowedName", t.AllowedName), dns: true,
			run: b.allowedNameDeniedPort},
		{channel: "dns-denied-name-a", target: t.DeniedName, missing: need("deniedName", t.DeniedName), dns: true,
			run: func(ctx context.Context) (Outcome, string) { return b.deniedName(ctx, dnsTypeA) }},
		{channel: "dns-denied-name-txt", target: t.DeniedName, missing: need("deniedName", t.DeniedName), dns: true,
			run: func(ctx context.Context) (Outcome, string) { return b.deniedName(ctx, dnsTypeTXT) }},
		{channel: "dns-outside-udp", target: t.OutsideResolver, missing: need("outsideResolver", t.OutsideResolver),
			run: func(ctx context.Context) (Outcome, string) { return b.outsideResolver(ctx, "udp") }},
		{channel: "dns-outside-tcp", target: t.OutsideResolver, missing: need("outsideResolver", t.OutsideResolver),
			run: func(ctx context.Context) (Outcome, string) { return b.outsideResolver(ctx, "tcp") }},
		{channel: "udp-443", target: withPort(denied, b.ports.udp), missing: need("deniedAddress", denied),
			run: func(ctx context.Context) (Outcome, string) { return b.udp443(ctx, withPort(denied, b.ports.udp)) }},
		{channel: "ipv6", target: denied6, missing: need("deniedAddress6", denied6),
			run: func(ctx context.Context) (Outcome, string) { return b.tcpToIP(ctx, denied6) }},
		{channel: "icmp-echo", target: hostOf(denied), missing: need("deniedAddress", denied),
			run: func(ctx context.Context) (Outcome, string) { return b.icmpEcho(ctx, hostOf(denied)) }},
		{channel: "metadata", target: t.MetadataAddress, missing: need("metadataAddress", t.MetadataAddress),
			expected: b.metadataExpected(), run: b.metadata},
		{channel: "http-ip-literal-host", target: withPort(denied, b.ports.http), missing: need("deniedAddress", denied),
			run: func(ctx context.Context) (Outcome, string) {
				return b.httpIPLiteral(ctx, withPort(denied, b.ports.http))
			}},
		{channel: "doh", target: t.DoHURL, missing: need("dohURL", t.DoHURL), run: b.doh},
	}
	for _, k := range icmpv6Kinds {
		ps = append(ps, probe{channel: k.channel, target: t.OffLinkIPv6, missing: need("offLinkIPv6", t.OffLinkIPv6),
			run: func(ctx context.Context) (Outcome, string) { return b.icmpv6OffLink(ctx, k) }})
	}
	ps = append(ps, []probe{
		{channel: "domain-fronting", expected: Blocked},
		{channel: "allowed-name", target: t.AllowedName, expected: Reachable, missing: need("allowedName", t.AllowedName), dns: true,
			budget: positiveBudget, run: b.allowedName},
		{channel: "registry-image", target: t.RegistryImage, expected: Reachable, missing: need("registryImage", t.RegistryImage),
			budget: positiveBudget, run: b.registryImage},
	}...)
	ps = append(ps, b.replicaProbes()...)
	ps = append(ps, b.runtimeProbes()...)
	ps = append(ps, b.containerdProbes()...)
	for i := range ps {
		if ps[i].expected == "" {
			ps[i].expected = Blocked
		}
	}
	return ps
}

// notTestable is the domain fronting row's fixed result.
const notTestable = "domain fronting (an allowed SNI carrying another name in the Host header inside TLS) cannot be tested without TLS interception: the gateway and this probe see only the SNI"
