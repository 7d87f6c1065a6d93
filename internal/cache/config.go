package cache

import (
	"fmt"
	"strings"
	"time"

	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/upstream"
	"github.com/airlockdev/airlock/internal/warm"
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
	// Warm pre-pulls a list of images on a schedule, so a new tag or an
	// evicted blob is in the cache before a node needs it. With replicas it
	// runs on one of them at a time (cluster singleton job "cache-warm").
	Warm WarmConfig `yaml:"warm"`
}

// WarmConfig is registry.cache.warm: what `airlock cache warm` does, run
// by serve itself every Every.
type WarmConfig struct {
	// Every is the interval between runs; 0 (default): no scheduled warm.
	// The first run starts soon after serve starts.
	Every time.Duration `yaml:"every"`
	// Images are references as nodes write them
	// (mcr.microsoft.com/oss/kubernetes/pause:3.6, host/repo@sha256:…).
	Images []string `yaml:"images"`
	// Platform ("os/arch" or "os/arch/variant") limits indexes to one
	// platform; empty: every platform.
	Platform string `yaml:"platform"`
}

// MinWarmEvery is the shortest registry.cache.warm.every.
const MinWarmEvery = time.Minute

// Validate reports every problem with a path relative to the warm section.
func (c *WarmConfig) Validate(report func(path, msg string)) {
	switch {
	case c.Every < 0:
		report("every", fmt.Sprintf("must not be negative, got %s", c.Every))
	case c.Every > 0 && c.Every < MinWarmEvery:
		report("every", fmt.Sprintf("must be at least %s (each run asks the upstream for every tag), got %s", MinWarmEvery, c.Every))
	case c.Every > 0 && len(c.Images) == 0:
		report("images", "must list at least one image when every is set")
	case c.Every == 0 && len(c.Images) > 0:
		report("every", "must be set when images are (how often to warm them, e.g. 6h)")
	}
	for i, img := range c.Images {
		if _, err := warm.ParseRef(img); err != nil {
			report(fmt.Sprintf("images[%d]", i), fmt.Sprintf("%v (write it as a node does: host/repository:tag or host/repository@sha256:…)", err))
		}
	}
	if p := c.Platform; p != "" {
		if n := strings.Count(p, "/"); n < 1 || n > 2 || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
			report("platform", fmt.Sprintf(`must be "os/arch" or "os/arch/variant", got %q`, p))
		}
	}
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
	c.Warm.Validate(func(path, msg string) { report("warm."+path, msg) })
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
