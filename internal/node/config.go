package node

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// OutboundType is how a node's traffic leaves it (Azure's --outbound-type).
type OutboundType string

// Outbound types.
const (
	// OutboundNone applies no packet rules: isolation is the network's job.
	// The artifact source and the resolver are still applied.
	OutboundNone OutboundType = "none"
	// OutboundBlock drops everything but loopback, established flows,
	// allowedAddresses, the registry and airlock DNS.
	OutboundBlock OutboundType = "block"
	// OutboundUserDefinedRouting is block, plus traffic whose next hop is
	// node.gateway (the node's default route points there, like a UDR).
	OutboundUserDefinedRouting OutboundType = "userDefinedRouting"
	// OutboundLoadBalancer removes airlock's packet rules.
	OutboundLoadBalancer OutboundType = "loadBalancer"
)

// ArtifactSource is where containerd pulls images from (Azure's
// --bootstrap-artifact-source).
type ArtifactSource string

// Artifact sources.
const (
	// SourceDirect removes airlock's containerd mirror configuration.
	SourceDirect ArtifactSource = "Direct"
	// SourceCache pins every cache-rule upstream to the airlock registry.
	SourceCache ArtifactSource = "Cache"
)

// Config is the node section of airlock.yaml.
type Config struct {
	// Root is the directory every file node reads or writes lives under
	// (containerd config, certs.d, resolver config, backups, state).
	// Default "/"; tests and image builders use a temporary directory.
	Root string `yaml:"root" config:"path"`
	// OutboundType is none, block, userDefinedRouting or loadBalancer.
	// Default loadBalancer: no packet rules, so applying the embedded
	// default config never cuts a machine off.
	OutboundType OutboundType `yaml:"outboundType"`
	// ArtifactSource is Direct (default) or Cache.
	ArtifactSource ArtifactSource `yaml:"artifactSource"`
	// Registry is the airlock registry as the node reaches it: one
	// "ip:port", or a list of them, one per replica (or one virtual
	// address). Every replica is a [host] entry of hosts.toml, in this
	// order: containerd tries the next when one fails. Required for
	// artifactSource Cache and for block and userDefinedRouting (every
	// replica stays reachable).
	Registry Addresses `yaml:"registry"`
	// Gateway is the gateway host's IP address: the next hop of the
	// default route for userDefinedRouting. A route has one next hop, so
	// this is one address: with several gateway replicas, their virtual
	// address (keepalived or a cloud load balancer, docs/ha.md).
	Gateway Addresses `yaml:"gateway"`
	// DNS is airlock DNS as the node reaches it: one "ip:port", or a list
	// of up to 3 (resolv.conf reads no more), one per replica. Every one
	// is a nameserver, asked in order with a 1 s timeout. Empty: the
	// resolver configuration is left alone.
	DNS Addresses `yaml:"dns"`
	// AllowedAddresses are CIDRs or addresses (cluster and VNet ranges)
	// that stay reachable under block and userDefinedRouting, for the node
	// and for its pods alike; pods never reach the link-local part
	// (169.254.0.0/16, fe80::/10) unless PodLinkLocalAccess is Allowed.
	// Empty: none.
	AllowedAddresses []string `yaml:"allowedAddresses"`
	// HostAllowedAddresses are CIDRs or addresses only the node itself
	// reaches under block and userDefinedRouting (the cloud metadata
	// service 169.254.169.254, Azure's platform agent 168.63.129.16):
	// pods' new flows to them are dropped even where AllowedAddresses
	// covers them. Empty: none.
	HostAllowedAddresses []string `yaml:"hostAllowedAddresses"`
	// PodLinkLocalAccess is None (default: pods reach no link-local
	// address, as AKS's podLinkLocalAccess None) or Allowed (pods reach
	// the link-local addresses AllowedAddresses lists).
	PodLinkLocalAccess LinkLocalAccess `yaml:"podLinkLocalAccess"`
	// Resolver is how the node's resolver is pointed at DNS: auto
	// (default: systemd-resolved when it is in use under Root, else
	// resolv.conf), resolvconf, resolved or none (leave it alone).
	// resolv.conf cannot carry a port, so resolvconf needs DNS on port 53.
	Resolver ResolverMode `yaml:"resolver"`
	// RegistryCAFile is the CA certificate (PEM) containerd trusts for the
	// airlock registry, as a path on the node; written as `ca` in every
	// hosts.toml. Setting it (or registry.tls) makes the mirror https.
	// Empty: the system roots.
	RegistryCAFile string `yaml:"registryCAFile" config:"path"`
	// ContainerdConfig is containerd's config.toml, as a path on the node
	// (under Root). Default /etc/containerd/config.toml.
	ContainerdConfig string `yaml:"containerdConfig"`
	// Runtimes are the container runtimes apply pins to airlock:
	// containerd, cri-o, podman, docker. Empty (default): the runtimes
	// found on the node (docs/node.md says how each is detected). When
	// set, exactly these: one found but not listed is not pinned (a note).
	Runtimes []Runtime `yaml:"runtimes"`
	// SandboxImage is the pod sandbox (pause) image the runtimes are
	// pinned to, pulled through airlock like any image. Default
	// registry.k8s.io/pause:3.10.
	SandboxImage string `yaml:"sandboxImage"`
	// RegistriesConf is the containers-registries.conf drop-in CRI-O and
	// podman read, as a path on the node (under Root). Default
	// /etc/containers/registries.conf.d/99-airlock.conf (read last, so
	// its entries win over earlier files for the same prefix).
	RegistriesConf string `yaml:"registriesConf"`
	// DockerDaemonConfig is dockerd's daemon.json, as a path on the node
	// (under Root). Default /etc/docker/daemon.json.
	DockerDaemonConfig string `yaml:"dockerDaemonConfig"`
	// ToolsRoot, when set, is the directory holding the node's own file
	// tree as airlock sees it (the host's / mounted at /host in a pod):
	// nft and ip are the node's, run chrooted into it, so an image
	// without them can apply. Empty (default): nft and ip from PATH.
	ToolsRoot string `yaml:"toolsRoot" config:"path"`
	// Agent is `airlock node agent`'s listen address and check interval
	// (agentconfig.go).
	Agent AgentConfig `yaml:"agent"`
}

// Runtime names a container runtime node can pin to airlock.
type Runtime string

// Container runtimes.
const (
	RuntimeContainerd Runtime = "containerd"
	RuntimeCRIO       Runtime = "cri-o"
	RuntimePodman     Runtime = "podman"
	RuntimeDocker     Runtime = "docker"
)

// Runtimes lists every runtime node knows, in the order apply handles them.
var Runtimes = []Runtime{RuntimeContainerd, RuntimeCRIO, RuntimePodman, RuntimeDocker}

// DefaultSandboxImage is the pause image runtimes are pinned to when
// node.sandboxImage is empty.
const DefaultSandboxImage = "registry.k8s.io/pause:3.10"

// LinkLocalAccess says whether pods may reach link-local addresses.
type LinkLocalAccess string

// Link-local access for pods.
const (
	// LinkLocalNone: pods reach no link-local address (169.254.0.0/16,
	// fe80::/10), whatever AllowedAddresses says.
	LinkLocalNone LinkLocalAccess = "None"
	// LinkLocalAllowed: pods reach the link-local addresses in
	// AllowedAddresses.
	LinkLocalAllowed LinkLocalAccess = "Allowed"
)

// ResolverMode selects the resolver configuration node writes.
type ResolverMode string

// Resolver modes.
const (
	ResolverAuto       ResolverMode = "auto"
	ResolverResolvConf ResolverMode = "resolvconf"
	ResolverResolved   ResolverMode = "resolved"
	ResolverNone       ResolverMode = "none"
)

// SetDefaults fills what the file left out.
func (c *Config) SetDefaults() {
	if c.Root == "" {
		c.Root = "/"
	}
	if c.OutboundType == "" {
		c.OutboundType = OutboundLoadBalancer
	}
	if c.ArtifactSource == "" {
		c.ArtifactSource = SourceDirect
	}
	if c.Resolver == "" {
		c.Resolver = ResolverAuto
	}
	if c.ContainerdConfig == "" {
		c.ContainerdConfig = "/etc/containerd/config.toml"
	}
	if c.PodLinkLocalAccess == "" {
		c.PodLinkLocalAccess = LinkLocalNone
	}
	if c.SandboxImage == "" {
		c.SandboxImage = DefaultSandboxImage
	}
	if c.RegistriesConf == "" {
		c.RegistriesConf = "/etc/containers/registries.conf.d/99-airlock.conf"
	}
	if c.DockerDaemonConfig == "" {
		c.DockerDaemonConfig = "/etc/docker/daemon.json"
	}
	c.Agent.setDefaults()
}

// Validate reports every problem with its key.
func (c *Config) Validate(report func(path, msg string)) {
	switch c.OutboundType {
	case OutboundNone, OutboundBlock, OutboundUserDefinedRouting, OutboundLoadBalancer:
	default:
		report("outboundType", fmt.Sprintf("must be none, block, userDefinedRouting or loadBalancer, got %q", c.OutboundType))
	}
	switch c.ArtifactSource {
	case SourceDirect, SourceCache:
	default:
		report("artifactSource", fmt.Sprintf("must be Direct or Cache, got %q", c.ArtifactSource))
	}
	if len(c.Registry) > 0 {
		c.Registry.validate("registry", report, nil)
	} else if c.ArtifactSource == SourceCache {
		report("registry", "required when artifactSource is Cache (the airlock registry's host:port as the node reaches it)")
	}
	if len(c.DNS) > MaxDNS {
		report("dns", fmt.Sprintf("at most %d servers (resolv.conf reads no more), got %d", MaxDNS, len(c.DNS)))
	}
	c.DNS.validate("dns", report, func(ap netip.AddrPort, s string) string {
		if c.Resolver == ResolverResolvConf && ap.Port() != 53 {
			return fmt.Sprintf("resolv.conf cannot carry a port: serve airlock DNS on port 53 for nodes, or set node.resolver to resolved or none (got %q)", s)
		}
		return ""
	})
	switch c.Resolver {
	case ResolverAuto, ResolverResolvConf, ResolverResolved, ResolverNone:
	default:
		report("resolver", fmt.Sprintf("must be auto, resolvconf, resolved or none, got %q", c.Resolver))
	}
	for _, f := range []struct{ key, val string }{
		{"containerdConfig", c.ContainerdConfig},
		{"registriesConf", c.RegistriesConf},
		{"dockerDaemonConfig", c.DockerDaemonConfig},
	} {
		if !strings.HasPrefix(f.val, "/") {
			report(f.key, fmt.Sprintf("must be an absolute path on the node (it is read under node.root), got %q", f.val))
		}
	}
	if c.ToolsRoot != "" && !strings.HasPrefix(c.ToolsRoot, "/") {
		report("toolsRoot", fmt.Sprintf("must be an absolute path (the node's / as mounted here, e.g. /host), got %q", c.ToolsRoot))
	}
	seen := map[Runtime]bool{}
	for i, r := range c.Runtimes {
		if !slices.Contains(Runtimes, r) {
			report(fmt.Sprintf("runtimes[%d]", i), fmt.Sprintf("must be containerd, cri-o, podman or docker, got %q", r))
		} else if seen[r] {
			report(fmt.Sprintf("runtimes[%d]", i), fmt.Sprintf("%s is listed twice", r))
		}
		seen[r] = true
	}
	if c.SandboxImage != "" && (strings.ContainsAny(c.SandboxImage, " \t\n\"'") || !strings.Contains(c.SandboxImage, "/")) {
		report("sandboxImage", fmt.Sprintf("must be a full image reference with its registry (registry.k8s.io/pause:3.10), got %q", c.SandboxImage))
	}
	switch {
	case len(c.Gateway) > 1:
		report("gateway", fmt.Sprintf("must be one IP address, the next hop of the default route, got %d: %s", len(c.Gateway), gatewayVIP))
	case len(c.Gateway) == 1:
		if _, err := netip.ParseAddr(c.Gateway[0]); err != nil {
			report("gateway", fmt.Sprintf("must be an IP address (the next hop of the default route), got %q; with several gateway replicas, %s", c.Gateway[0], gatewayVIP))
		}
	case c.OutboundType == OutboundUserDefinedRouting:
		report("gateway", "required when outboundType is userDefinedRouting (the gateway host's IP address; with several gateway replicas, "+gatewayVIP+")")
	}
	for _, list := range []struct {
		key string
		val []string
	}{{"allowedAddresses", c.AllowedAddresses}, {"hostAllowedAddresses", c.HostAllowedAddresses}} {
		for i, s := range list.val {
			if _, err := parsePrefix(s); err != nil {
				report(fmt.Sprintf("%s[%d]", list.key, i), err.Error())
			}
		}
	}
	switch c.PodLinkLocalAccess {
	case LinkLocalNone, LinkLocalAllowed:
	default:
		report("podLinkLocalAccess", fmt.Sprintf("must be None or Allowed, got %q", c.PodLinkLocalAccess))
	}
	c.Agent.validate(report)
}

// parsePrefix parses a CIDR or a single address (as a /32 or /128).
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("must be a CIDR such as 10.42.0.0/16 or an IP address, got %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parsePrefixes parses every entry of a list of CIDRs and addresses.
func parsePrefixes(key string, ss []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ss))
	for i, s := range ss {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("node.%s[%d]: %w", key, i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Reaches reports whether the configuration lets the node itself (pod
// false) or its pods (pod true) reach a under block and
// userDefinedRouting: the node reaches allowedAddresses and
// hostAllowedAddresses; pods reach allowedAddresses, less
// hostAllowedAddresses and, unless podLinkLocalAccess is Allowed,
// link-local addresses. Entries that do not parse count for nothing.
func (c Config) Reaches(a netip.Addr, pod bool) bool {
	in := func(list []string) bool {
		for _, s := range list {
			if p, err := parsePrefix(s); err == nil && p.Contains(a) {
				return true
			}
		}
		return false
	}
	if !pod {
		return in(c.AllowedAddresses) || in(c.HostAllowedAddresses)
	}
	if in(c.HostAllowedAddresses) || (c.PodLinkLocalAccess != LinkLocalAllowed && IsLinkLocal(netip.PrefixFrom(a, a.BitLen()))) {
		return false
	}
	return in(c.AllowedAddresses)
}

// linkLocalNotes say, for each entry of AllowedAddresses that is or holds
// link-local addresses, that pods do not reach that part (nil with
// PodLinkLocalAccess Allowed).
func linkLocalNotes(c Config, allowed []netip.Prefix) []string {
	if c.PodLinkLocalAccess == LinkLocalAllowed {
		return nil
	}
	var notes []string
	for _, p := range allowed {
		if IsLinkLocal(p) {
			notes = append(notes, fmt.Sprintf("node.allowedAddresses %s is or holds link-local addresses: this node reaches them, pods do not (node.podLinkLocalAccess None); list it in node.hostAllowedAddresses to say so, or set podLinkLocalAccess Allowed", p))
		}
	}
	return notes
}

// parseHostPort parses "ip:port" with a literal IP address: the node's
// firewall rules need an address, not a name.
func parseHostPort(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("must be ip:port such as 10.42.2.4:5000, got %q", s)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("host %q must be an IP address (the node's firewall allows addresses, not names)", host)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.AddrPort{}, fmt.Errorf("port %q must be a number from 1 to 65535", port)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}
