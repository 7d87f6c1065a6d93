package verify

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"

	"github.com/miekg/dns"
)

// Config is the verify section of airlock.yaml.
type Config struct {
	// Targets are what `airlock verify` probes. There are no built-in
	// public targets: an unset target's channels are reported as not
	// tested.
	Targets Targets `yaml:"targets"`
}

// Targets name the far side of each probe.
type Targets struct {
	// DeniedAddress is an "ip:port" the node must not reach (TCP, UDP,
	// ICMP, an allowed SNI aimed at it, an IP-literal HTTP Host).
	DeniedAddress string `yaml:"deniedAddress"`
	// DeniedAddress6 is the IPv6 counterpart of DeniedAddress ("[ip]:port").
	DeniedAddress6 string `yaml:"deniedAddress6"`
	// DeniedName is a name the node must not resolve (A and TXT).
	DeniedName string `yaml:"deniedName"`
	// AllowedName is "name:port" the node must reach (positive check); it
	// is also probed on DeniedPort.
	AllowedName string `yaml:"allowedName"`
	// DeniedPort is a TCP port no rule allows for AllowedName: the probe
	// "allowed name on a denied port" connects there. Default 8443; zero
	// means the default.
	DeniedPort uint16 `yaml:"deniedPort"`
	// OutsideResolver is "ip:port" of a DNS server the node must not reach
	// directly.
	OutsideResolver string `yaml:"outsideResolver"`
	// MetadataAddress is the cloud metadata endpoint. Default
	// 169.254.169.254:80.
	MetadataAddress string `yaml:"metadataAddress"`
	// DoHURL is a DNS-over-HTTPS endpoint the node must not reach.
	DoHURL string `yaml:"dohURL"`
	// RegistryImage is an image reference pulled through the node's mirror
	// configuration (positive check). Empty: not checked.
	RegistryImage string `yaml:"registryImage"`
	// OffLinkIPv6 is an IPv6 address (no port) off every link of the node,
	// on a host that runs `airlock verify --reflect-icmpv6`: the ICMPv6
	// probes (neighbour discovery shapes, MLD, echo, an unassigned type)
	// are sent there. Empty: not tested.
	OffLinkIPv6 string `yaml:"offLinkIPv6"`
}

// DefaultMetadataAddress is the link-local metadata endpoint of the major
// clouds.
const DefaultMetadataAddress = "169.254.169.254:80"

// DefaultDeniedPort is the port the allowed name is probed on when
// targets.deniedPort is not set.
const DefaultDeniedPort = 8443

// SetDefaults fills what the file left out.
func (c *Config) SetDefaults() {
	if c.Targets.MetadataAddress == "" {
		c.Targets.MetadataAddress = DefaultMetadataAddress
	}
	if c.Targets.DeniedPort == 0 {
		c.Targets.DeniedPort = DefaultDeniedPort
	}
}

// Validate reports every problem with its key.
func (c *Config) Validate(report func(path, msg string)) {
	t := c.Targets
	for _, f := range []struct {
		key, val string
		kind     addrKind
	}{
		{"targets.deniedAddress", t.DeniedAddress, ipv4Only},
		{"targets.deniedAddress6", t.DeniedAddress6, ipv6Only},
		{"targets.allowedName", t.AllowedName, nameOnly},
		{"targets.outsideResolver", t.OutsideResolver, anyIP},
		{"targets.metadataAddress", t.MetadataAddress, anyIP},
	} {
		if f.val == "" {
			continue
		}
		if msg := checkHostPort(f.val, f.kind); msg != "" {
			report(f.key, msg)
		}
	}
	if t.DeniedName != "" {
		if _, ok := dns.IsDomainName(t.DeniedName); !ok {
			report("targets.deniedName", fmt.Sprintf("must be a DNS name, got %q", t.DeniedName))
		}
	}
	if t.DoHURL != "" {
		if u, err := url.Parse(t.DoHURL); err != nil || u.Scheme != "https" || u.Host == "" {
			report("targets.dohURL", fmt.Sprintf("must be an https:// URL such as https://dns.example/dns-query, got %q", t.DoHURL))
		}
	}
	if t.OffLinkIPv6 != "" {
		if msg := checkOffLinkIPv6(t.OffLinkIPv6); msg != "" {
			report("targets.offLinkIPv6", msg)
		}
	}
	if t.RegistryImage != "" {
		if _, err := parseImageRef(t.RegistryImage); err != nil {
			report("targets.registryImage", err.Error())
		}
	}
}

// checkOffLinkIPv6 returns what is wrong with s as the ICMPv6 probes'
// target, or "": it must be a routed IPv6 unicast address.
func checkOffLinkIPv6(s string) string {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return fmt.Sprintf("must be an IPv6 address without a port, such as fdaa:99::66, got %q", s)
	case !a.Is6() || a.Is4In6():
		return fmt.Sprintf("must be an IPv6 address, got %q", s)
	case a.Zone() != "", a.IsLinkLocalUnicast(), a.IsLoopback(), a.IsUnspecified(), a.IsMulticast():
		return fmt.Sprintf("%q is not a routed unicast address: the probes need one off every link of the node", s)
	}
	return ""
}

type addrKind int

const (
	anyIP addrKind = iota
	ipv4Only
	ipv6Only
	nameOnly
)

// checkHostPort returns what is wrong with s as a target of kind k, or "".
func checkHostPort(s string, k addrKind) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return fmt.Sprintf("must be host:port, got %q", s)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Sprintf("port %q must be a number from 1 to 65535", port)
	}
	a, err := netip.ParseAddr(host)
	switch {
	case k == nameOnly && err == nil:
		return fmt.Sprintf("host %q must be a name (it is sent as the TLS server name), not an address", host)
	case k == nameOnly:
		if _, ok := dns.IsDomainName(host); !ok {
			return fmt.Sprintf("host %q is not a DNS name", host)
		}
	case err != nil:
		return fmt.Sprintf("host %q must be an IP address (probes aim at addresses, not names)", host)
	case k == ipv4Only && !a.Unmap().Is4():
		return fmt.Sprintf("host %q must be an IPv4 address; put IPv6 in targets.deniedAddress6", host)
	case k == ipv6Only && (a.Is4() || a.Is4In6()):
		return fmt.Sprintf("host %q must be an IPv6 address, written [addr]:port", host)
	}
	return ""
}
