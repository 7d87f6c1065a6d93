package cache

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/airlockdev/airlock/internal/netclass"
	"github.com/airlockdev/airlock/internal/upstream"
)

// Defaults of the cache settings.
const (
	DefaultUpstreamTimeout = 10 * time.Second
	DefaultTagTTL          = 5 * time.Minute
)

// Config is the cache part of the registry section of airlock.yaml.
type Config struct {
	// CacheRules map target namespaces of this registry to upstream
	// repositories. Empty: a plain registry.
	CacheRules []Rule `yaml:"cacheRules"`
	// CredentialSets name environment variables with upstream credentials.
	CredentialSets []upstream.CredentialSet `yaml:"credentialSets"`
	// Upstreams override where an upstream host is fetched from (tests,
	// mirrors of mirrors, a corporate CA).
	Upstreams map[string]upstream.Endpoint `yaml:"upstreams"`
	// UpstreamAllowedInternalRanges are internal or special address ranges
	// (CIDRs without host bits, or single addresses; the classes of
	// internal/netclass) that the upstream client may connect to through a
	// redirect, a token realm or an upstream without an upstreams entry:
	// an on-premises token service or blob store. Empty (default): those
	// connections reach public addresses only; an upstreams entry's own
	// host:port may be any address either way. Parsed once, when the
	// config is decoded (netclass.AllowedRange).
	UpstreamAllowedInternalRanges netclass.AllowedRanges `yaml:"upstreamAllowedInternalRanges"`
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
	upstream.ValidateCredentialSets(c.CredentialSets, func(p, msg string) { report("credentialSets"+p, msg) })
	upstream.ValidateUpstreams(c.Upstreams, func(p, msg string) { report("upstreams"+p, msg) })
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
// (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB).
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// UnmarshalText parses "50GiB", "500MB", "1024".
func (s *Size) UnmarshalText(b []byte) error {
	v := strings.TrimSpace(string(b))
	mult := int64(1)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size: write a whole number of bytes or one with a unit, e.g. 50GiB", string(b))
	}
	if n > 0 && mult > (1<<62)/n {
		return fmt.Errorf("%q is too large", string(b))
	}
	*s = Size(n * mult)
	return nil
}
