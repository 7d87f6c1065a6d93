package verify

import (
	"fmt"
	"net"
	"strconv"
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
	// is also probed on a port the policy does not allow.
	AllowedName string `yaml:"allowedName"`
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
}

// DefaultMetadataAddress is the link-local metadata endpoint of the major
// clouds.
const DefaultMetadataAddress = "169.254.169.254:80"

// SetDefaults fills what the file left out.
func (c *Config) SetDefaults() {
	if c.Targets.MetadataAddress == "" {
		c.Targets.MetadataAddress = DefaultMetadataAddress
	}
}

// Validate reports every problem with its key.
func (c *Config) Validate(report func(path, msg string)) {
	t := c.Targets
	for _, f := range []struct{ key, val string }{
		{"targets.deniedAddress", t.DeniedAddress},
		{"targets.deniedAddress6", t.DeniedAddress6},
		{"targets.allowedName", t.AllowedName},
		{"targets.outsideResolver", t.OutsideResolver},
		{"targets.metadataAddress", t.MetadataAddress},
	} {
		if f.val == "" {
			continue
		}
		host, port, err := net.SplitHostPort(f.val)
		if err != nil || host == "" {
			report(f.key, fmt.Sprintf("must be host:port, got %q", f.val))
			continue
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			report(f.key, fmt.Sprintf("port %q must be a number from 1 to 65535", port))
		}
	}
}
