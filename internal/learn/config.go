package learn

import (
	"fmt"
	"net/netip"
	"strings"
)

// DefaultThreshold is how many distinct sibling names under one registrable
// domain it takes, by default, to propose "*.domain" instead of the names.
const DefaultThreshold = 3

// Config is the learn section of airlock.yaml: how `airlock policy learn`
// groups sources and when it collapses names.
type Config struct {
	// Sources are the source groups: an observed client address inside a
	// group's ranges is proposed as the whole group (the rule's
	// sourceAddresses are the ranges). Default none: every source is its
	// own group (its /32 or /128). The first group whose ranges hold an
	// address wins.
	Sources []SourceGroup `yaml:"sources"`
	// Threshold is how many distinct names under one registrable domain
	// (example.com, example.co.uk) it takes to propose "*.example.com"
	// instead of the names. Default 3; at least 2.
	Threshold int `yaml:"threshold"`
}

// SourceGroup is a named set of client address ranges, such as the node or
// pod CIDR.
type SourceGroup struct {
	// Name names the group in rule collection names; required; letters,
	// digits, '_', '.' and '-', starting with a letter or digit, at most 40
	// characters; unique.
	Name string `yaml:"name"`
	// Ranges are CIDRs (no host bits set) or single IP addresses; at least
	// one.
	Ranges []string `yaml:"ranges"`
}

// SetDefaults sets the threshold to DefaultThreshold.
func (c *Config) SetDefaults() { c.Threshold = DefaultThreshold }

// Validate checks the groups and the threshold.
func (c *Config) Validate(report func(path, msg string)) {
	if c.Threshold < 2 {
		report("threshold", fmt.Sprintf("must be at least 2, got %d (a wildcard needs siblings)", c.Threshold))
	}
	seen := map[string]int{}
	for i, g := range c.Sources {
		p := fmt.Sprintf("sources[%d]", i)
		switch {
		case !validGroupName(g.Name):
			report(p+".name", fmt.Sprintf("%q: want 1-40 letters, digits, '_', '.' or '-', starting with a letter or digit", g.Name))
		default:
			if j, dup := seen[g.Name]; dup {
				report(p+".name", fmt.Sprintf("duplicate name %q (also sources[%d])", g.Name, j))
			}
			seen[g.Name] = i
		}
		if len(g.Ranges) == 0 {
			report(p+".ranges", "give at least one CIDR, for example 10.224.0.0/16")
		}
		for j, r := range g.Ranges {
			if _, err := parseRange(r); err != nil {
				report(fmt.Sprintf("%s.ranges[%d]", p, j), err.Error())
			}
		}
	}
}

// parseRange parses a CIDR without host bits, or one address.
func parseRange(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q: want a CIDR such as 10.224.0.0/16 or an IP address", s)
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped IPv6 prefix; write the IPv4 CIDR", s)
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("%q: host bits set; did you mean %s?", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q: want a CIDR such as 10.224.0.0/16 or an IP address", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func validGroupName(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// ParseSources parses the --sources flag: "NAME=CIDR[,CIDR];NAME=CIDR…"
// (groups separated by ';', or by spaces). The groups are validated as the
// config section is.
func ParseSources(s string) ([]SourceGroup, error) {
	var out []SourceGroup
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ' ' }) {
		name, ranges, ok := strings.Cut(part, "=")
		if !ok || name == "" || ranges == "" {
			return nil, fmt.Errorf("--sources %q: want NAME=CIDR[,CIDR], groups separated by ';' (nodes=10.224.0.0/16;pods=10.244.0.0/16)", part)
		}
		var rs []string
		for _, r := range strings.Split(ranges, ",") {
			if r = strings.TrimSpace(r); r != "" {
				rs = append(rs, r)
			}
		}
		out = append(out, SourceGroup{Name: name, Ranges: rs})
	}
	var problems []string
	c := Config{Sources: out, Threshold: DefaultThreshold}
	c.Validate(func(path, msg string) { problems = append(problems, path+": "+msg) })
	if len(problems) > 0 {
		return nil, fmt.Errorf("--sources: %s", strings.Join(problems, "; "))
	}
	return out, nil
}
