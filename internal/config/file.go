package config

import (
	"fmt"

	"github.com/airlockdev/airlock/internal/admin"
	"github.com/airlockdev/airlock/internal/cache"
	"github.com/airlockdev/airlock/internal/cluster"
	"github.com/airlockdev/airlock/internal/dnsserver"
	"github.com/airlockdev/airlock/internal/egress"
	"github.com/airlockdev/airlock/internal/learn"
	"github.com/airlockdev/airlock/internal/node"
	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/registry"
	"github.com/airlockdev/airlock/internal/verify"
)

// Version is the only version of the file format this airlock reads.
const Version = 1

// File is a decoded, defaulted and validated airlock.yaml. Each field is a
// section; a section's type (here or in its domain package) documents its
// keys, and has SetDefaults and Validate methods the decoder calls.
type File struct {
	// Version of the file format. Required; must be 1.
	Version int `yaml:"version"`
	// Log configures airlock's own log on stderr.
	Log LogConfig `yaml:"log"`
	// Admin is the HTTP listener for /metrics, /healthz and /readyz.
	Admin admin.Config `yaml:"admin"`
	// Registry is the OCI registry and pull-through cache.
	Registry RegistrySection `yaml:"registry"`
	// DNS is the policy DNS server: names the policy allows, private zones.
	DNS dnsserver.Config `yaml:"dns"`
	// Gateway is the egress gateway: explicit and transparent proxies.
	Gateway egress.Config `yaml:"gateway"`
	// Policy is the rule model shared by the gateway and DNS.
	Policy policy.Config `yaml:"policy"`
	// Cluster is how replicas coordinate (Redis); absent: one replica.
	Cluster cluster.Config `yaml:"cluster"`
	// Node is what `airlock node apply` makes of this host: outbound type,
	// artifact source, resolver.
	Node node.Config `yaml:"node"`
	// Verify names the targets `airlock verify` probes.
	Verify verify.Config `yaml:"verify"`
	// Learn is how `airlock policy learn` groups sources and collapses
	// names.
	Learn learn.Config `yaml:"learn"`
}

// LogConfig configures airlock's own log.
type LogConfig struct {
	// Format of log lines: "json" (default) or "text".
	Format string `yaml:"format"`
	// Level is the least severe level logged: "debug", "info" (default),
	// "warn" or "error".
	Level string `yaml:"level"`
}

// SetDefaults sets format json and level info.
func (c *LogConfig) SetDefaults() {
	c.Format = "json"
	c.Level = "info"
}

// Validate checks the format and level names.
func (c *LogConfig) Validate(report func(path, msg string)) {
	switch c.Format {
	case "json", "text":
	default:
		report("format", fmt.Sprintf("must be json or text, got %s", quote(c.Format)))
	}
	switch c.Level {
	case "debug", "info", "warn", "error":
	default:
		report("level", fmt.Sprintf("must be debug, info, warn or error, got %s", quote(c.Level)))
	}
}

// RegistrySection is the registry section: the registry's own keys
// (registry.Config), the pull-through cache's (cache.Config: cacheRules,
// upstreamTimeout, tagTTL, quota) and the upstream client's (upstream.Config,
// inlined by cache.Config: credentialSets, upstreams,
// upstreamAllowedInternalRanges) side by side in one map. Each key has one
// owner, the package that defines its type and validates it.
type RegistrySection struct {
	registry.Config `yaml:",inline"`
	Cache           cache.Config `yaml:",inline"`
}

// SetDefaults applies both packages' defaults.
func (c *RegistrySection) SetDefaults() {
	c.Config.SetDefaults()
	c.Cache.SetDefaults()
}

// Validate runs both packages' checks.
func (c *RegistrySection) Validate(report func(path, msg string)) {
	c.Config.Validate(report)
	c.Cache.Validate(report)
}
