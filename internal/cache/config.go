package cache

import (
	"fmt"
	"time"

	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/upstream"
)

// Defaults of the cache settings.
const (
	DefaultUpstreamTimeout = 10 * time.Second
	DefaultTagTTL          = 5 * time.Minute
)

// Config is the cache part of the registry section of airlock.yaml: its
// own keys (cacheRules, upstreamTimeout, tagTTL, quota) and, inlined, the
// upstream client's (upstream.Config). config.RegistrySection puts it
// beside registry.Config; each key has one owner.
type Config struct {
	// CacheRules map target namespaces of this registry to upstream
	// repositories. Empty: a plain registry.
	CacheRules []Rule `yaml:"cacheRules"`
	// Config is the upstream client's keys of the section
	// (credentialSets, upstreams, upstreamAllowedInternalRanges): their
	// types and validation are upstream's; cacheRules refer to its
	// credential sets by name.
	upstream.Config `yaml:",inline"`
	// UpstreamTimeout bounds a cold miss with the upstream unreachable,
	// retries included, and the longest an upstream may stall mid-blob.
	// Default 10s.
	UpstreamTimeout time.Duration `yaml:"upstreamTimeout"`
	// TagTTL is how long a cached tag is served before it is revalidated
	// with a HEAD. Default 5m. Manifests by digest never expire.
	TagTTL time.Duration `yaml:"tagTTL"`
	// Quota bounds cached content in bytes ("50GiB", "500MB" or a number);
	// pushed content never counts. 0 (default): no limit.
	Quota Size `yaml:"quota"`
}

// SetDefaults fills upstreamTimeout and tagTTL.
func (c *Config) SetDefaults() {
	c.UpstreamTimeout = DefaultUpstreamTimeout
	c.TagTTL = DefaultTagTTL
}

// Validate reports every problem with a path relative to the registry section.
func (c *Config) Validate(report func(path, msg string)) {
	c.Config.Validate(report)
	compileRules(c.CacheRules, c.credentialSetNames(), report)
	if c.UpstreamTimeout <= 0 {
		report("upstreamTimeout", fmt.Sprintf("must be positive, got %s", c.UpstreamTimeout))
	}
	if c.TagTTL <= 0 {
		report("tagTTL", fmt.Sprintf("must be positive, got %s", c.TagTTL))
	}
	if c.Quota < 0 {
		report("quota", "must not be negative")
	}
}

func (c *Config) credentialSetNames() map[string]bool {
	m := map[string]bool{}
	for _, s := range c.CredentialSets {
		m[s.Name] = true
	}
	return m
}

// Size is a number of bytes, written as a number or with a unit
// (storage.Size).
type Size = storage.Size
