package node

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"syscall"
)

// Input is everything apply needs: the node section and what it needs of
// the registry section (its cache rules and whether it serves TLS).
type Input struct {
	Config      Config
	CacheRules  []CacheRule
	RegistryTLS bool
}

// wantFile is one file the plan wants on the node.
type wantFile struct {
	path    string // on the node
	role    string
	content string
}

// Plan is what apply will make of the node. It is computed from the
// input and the files under root only: no network, no nft.
type Plan struct {
	Outbound OutboundType
	Source   ArtifactSource
	Resolver ResolverMode
	Mirrors  []Mirror
	// Runtimes are the container runtimes apply configures (runtimes.go).
	Runtimes []RuntimeInfo
	CertsDir string
	Ruleset  string
	Counts   map[string]int
	files    []wantFile
	// Notes say what the user must do (restart containerd) or know.
	Notes []string
	route *netip.Addr // default route next hop wanted (userDefinedRouting)
}

// plan computes what the node should look like for in.
func (n *Node) plan(in Input) (*Plan, error) {
	c := in.Config
	p := &Plan{Outbound: c.OutboundType, Source: c.ArtifactSource, Resolver: ResolverNone}
	rin := RulesetInput{Outbound: c.OutboundType}
	var err error
	if rin.Registry, err = c.Registry.parseAll("registry"); err != nil {
		return nil, err
	}
	if rin.DNS, err = c.DNS.parseAll("dns"); err != nil {
		return nil, err
	}
	if len(rin.DNS) > MaxDNS {
		return nil, fmt.Errorf("node.dns: at most %d servers (resolv.conf reads no more), got %d", MaxDNS, len(rin.DNS))
	}
	switch len(c.Gateway) {
	case 0:
	case 1:
		if rin.Gateway, err = netip.ParseAddr(c.Gateway[0]); err != nil {
			return nil, fmt.Errorf("node.gateway: %w", err)
		}
	default:
		return nil, fmt.Errorf("node.gateway: must be one IP address, the next hop of the default route, got %d: %s", len(c.Gateway), gatewayVIP)
	}
	if rin.Allowed, err = parsePrefixes("allowedAddresses", c.AllowedAddresses); err != nil {
		return nil, err
	}
	if rin.HostAllowed, err = parsePrefixes("hostAllowedAddresses", c.HostAllowedAddresses); err != nil {
		return nil, err
	}
	rin.PodLinkLocal = c.PodLinkLocalAccess == LinkLocalAllowed
	if c.OutboundType.HasRules() {
		p.Notes = append(p.Notes, linkLocalNotes(c, rin.Allowed)...)
	}
	if c.OutboundType.HasRules() && len(rin.Registry) == 0 {
		return nil, errors.New("node.registry is empty: outboundType " + string(c.OutboundType) + " would cut the node off its registry; set node.registry to the airlock registry's ip:port")
	}
	if c.OutboundType == OutboundUserDefinedRouting {
		if !rin.Gateway.IsValid() {
			return nil, errors.New("node.gateway is empty: userDefinedRouting routes through the gateway host; set node.gateway to its IP address (with several gateway replicas, " + gatewayVIP + ")")
		}
		g := rin.Gateway
		p.route = &g
	}
	p.Ruleset = Ruleset(rin)
	p.Counts = RuleCounts(rin)

	var runtimeNotes []string
	p.Runtimes, runtimeNotes = n.detectRuntimes(c)
	p.Notes = append(p.Notes, runtimeNotes...)
	if c.ArtifactSource == SourceCache {
		if p.pins(RuntimeContainerd) {
			if err := n.planMirrors(p, in); err != nil {
				return nil, err
			}
		}
		if err := n.planRuntimes(p, in); err != nil {
			return nil, err
		}
	}
	if len(rin.DNS) > 0 {
		if err := n.planResolver(p, c.Resolver, rin.DNS); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (n *Node) planMirrors(p *Plan, in Input) error {
	c := in.Config
	if len(c.Registry) == 0 {
		return errors.New("node.registry is empty: artifactSource Cache pins upstreams to the airlock registry; set node.registry")
	}
	mirrors, err := Mirrors(in.CacheRules)
	if err != nil {
		return fmt.Errorf("registry.cacheRules: %w", err)
	}
	if len(mirrors) == 0 {
		return errors.New("artifactSource Cache but registry.cacheRules is empty: add a cache rule (e.g. sourceRepo mcr.microsoft.com/*) or use artifactSource Direct")
	}
	return n.planContainerd(p, in, mirrors)
}

func (n *Node) planResolver(p *Plan, mode ResolverMode, dns []netip.AddrPort) error {
	if mode == ResolverNone {
		return nil
	}
	if mode == ResolverAuto || mode == "" {
		mode = detectResolver(n.root)
	}
	p.Resolver = mode
	switch mode {
	case ResolverResolved:
		p.files = append(p.files, wantFile{path: ResolvedDropIn, role: "systemd-resolved drop-in", content: resolvedDropIn(dns)})
		p.Notes = append(p.Notes, "systemd-resolved reads the drop-in on restart: systemctl restart systemd-resolved")
	default:
		cur, _, err := readFile(n.under(ResolvConf))
		if err != nil {
			return fmt.Errorf("reading %s: %w", ResolvConf, err)
		}
		text, err := resolvConf(dns, cur)
		if err != nil {
			return err
		}
		p.files = append(p.files, wantFile{path: ResolvConf, role: "resolv.conf", content: text})
	}
	return nil
}

// readFile returns a file's content and whether it exists (a dangling
// symlink counts as missing).
func readFile(p string) (string, bool, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return string(b), true, nil
}

// DryRun renders the plan as apply --dry-run prints it: the complete
// ruleset and the full content of every file.
func (p *Plan) DryRun() string {
	var b []byte
	b = fmt.Appendf(b, "# outboundType %s, artifactSource %s, resolver %s\n", p.Outbound, p.Source, p.Resolver)
	if p.route != nil {
		b = fmt.Appendf(b, "# default route: via %s\n", *p.route)
	}
	for _, r := range p.Runtimes {
		b = fmt.Appendf(b, "# runtime: %s; %s\n", r, r.Restart)
	}
	b = fmt.Appendf(b, "\n# nft -f - (table inet %s)\n%s", Table, p.Ruleset)
	for _, f := range p.files {
		b = fmt.Appendf(b, "\n# %s (%s)\n%s", f.path, f.role, f.content)
	}
	for _, note := range p.Notes {
		b = fmt.Appendf(b, "\n# note: %s", note)
	}
	if len(p.Notes) > 0 {
		b = append(b, '\n')
	}
	return string(b)
}
