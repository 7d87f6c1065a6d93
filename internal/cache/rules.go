package cache

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/airlockdev/airlock/internal/oci"
)

// MaxRules is ACR's limit on cache rules, kept for the same reason: rule
// matching stays cheap and a config stays reviewable.
const MaxRules = 1000

// Rule maps a target repository namespace of this registry to a source
// repository on an upstream registry (ACR artifact-cache semantics).
type Rule struct {
	// Name identifies the rule in logs and errors.
	Name string `yaml:"name"`
	// SourceRepo is "host/path/*" (every repository under path; "host/*"
	// for the whole registry) or "host/path" (exactly one repository).
	SourceRepo string `yaml:"sourceRepo"`
	// TargetRepo is "prefix/*", "*" (every repository), or an exact
	// repository name; wildcard sources need wildcard targets.
	TargetRepo string `yaml:"targetRepo"`
	// CredentialSet names an entry of credentialSets used to authenticate
	// to the source; empty: anonymous.
	CredentialSet string `yaml:"credentialSet"`
}

// rule is a compiled Rule.
type rule struct {
	name     string
	host     string // upstream host as written, e.g. mcr.microsoft.com
	source   string // source path prefix (wildcard) or exact path; "" for host/*
	target   string // target prefix (wildcard) or exact name; "" for *
	wildcard bool
	cred     string
}

// upstreamRepo is the source repository for local name, which matched r.
func (r *rule) upstreamRepo(name string) string {
	if !r.wildcard {
		return r.source
	}
	rest := name
	if r.target != "" {
		rest = name[len(r.target)+1:]
	}
	if r.source == "" {
		return rest
	}
	return r.source + "/" + rest
}

// localRepo is the local name for upstream repository path, which matched r
// by source.
func (r *rule) localRepo(path string) string {
	if !r.wildcard {
		return r.target
	}
	rest := path
	if r.source != "" {
		rest = path[len(r.source)+1:]
	}
	if r.target == "" {
		return rest
	}
	return r.target + "/" + rest
}

// rules is the compiled rule set.
type rules struct {
	all []*rule
}

// compileRules validates and compiles; report receives every problem with
// a path relative to the cache configuration ("cacheRules[2].targetRepo").
func compileRules(in []Rule, credSets map[string]bool, report func(path, msg string)) *rules {
	rs := &rules{}
	if len(in) > MaxRules {
		report("cacheRules", fmt.Sprintf("has %d rules; at most %d are allowed", len(in), MaxRules))
	}
	names := map[string]int{}
	for i, r := range in {
		p := "cacheRules[" + strconv.Itoa(i) + "]"
		ok := true
		bad := func(field, msg string) { report(p+"."+field, msg); ok = false }
		switch first, dup := names[r.Name]; {
		case r.Name == "":
			bad("name", "must be set")
		case dup:
			bad("name", fmt.Sprintf("duplicate rule name %q (also cacheRules[%d])", r.Name, first))
		default:
			names[r.Name] = i
		}
		c := &rule{name: r.Name, cred: r.CredentialSet}
		host, spath, swild, err := parseSource(r.SourceRepo)
		if err != "" {
			bad("sourceRepo", err)
		}
		c.host, c.source = host, spath
		target, twild, err := parseTarget(r.TargetRepo)
		targetOK := err == ""
		if err != "" {
			bad("targetRepo", err)
		}
		c.target, c.wildcard = target, twild
		if err == "" && swild != twild && r.SourceRepo != "" {
			bad("targetRepo", "a wildcard sourceRepo (…/*) needs a wildcard targetRepo (prefix/* or *), and an exact one an exact one")
		}
		if r.CredentialSet != "" && !credSets[r.CredentialSet] {
			bad("credentialSet", fmt.Sprintf("no credentialSets entry is named %q", r.CredentialSet))
		}
		if targetOK {
			for j, o := range rs.all {
				if msg := overlap(c, o); msg != "" {
					report(p+".targetRepo", fmt.Sprintf("%s rule %q (cacheRules[%d])", msg, o.name, indexOf(in, o.name, j)))
					ok = false
					break
				}
			}
		}
		if ok {
			rs.all = append(rs.all, c)
		}
	}
	return rs
}

func indexOf(in []Rule, name string, fallback int) int {
	for i, r := range in {
		if r.Name == name {
			return i
		}
	}
	return fallback
}

// overlap says why a and b cannot both exist, or "".
func overlap(a, b *rule) string {
	switch {
	case a.wildcard && b.wildcard:
		if a.target == "" || b.target == "" || a.target == b.target ||
			strings.HasPrefix(a.target, b.target+"/") || strings.HasPrefix(b.target, a.target+"/") {
			return "overlaps the wildcard target of"
		}
	case !a.wildcard && !b.wildcard:
		if a.target == b.target {
			return "has the same target as"
		}
	}
	return ""
}

// parseSource splits "host/path/*", "host/*" or "host/path".
func parseSource(s string) (host, path string, wildcard bool, problem string) {
	if s == "" {
		return "", "", false, "must be set, e.g. mcr.microsoft.com/* or docker.io/library/ubuntu"
	}
	host, rest, ok := strings.Cut(s, "/")
	if !ok || rest == "" {
		return "", "", false, fmt.Sprintf("%q needs a repository after the host, e.g. %s/*", s, s)
	}
	if !oci.ValidReferenceHost(host) {
		return "", "", false, fmt.Sprintf("%q is not a registry host name (with an optional :port)", host)
	}
	if rest == "*" {
		return host, "", true, ""
	}
	if p, ok := strings.CutSuffix(rest, "/*"); ok {
		rest, wildcard = p, true
	}
	if _, err := oci.ParseName(rest); err != nil {
		return "", "", false, fmt.Sprintf("repository part %q: %v", rest, err)
	}
	return host, rest, wildcard, ""
}

// parseTarget splits "prefix/*", "*" or an exact name.
func parseTarget(s string) (target string, wildcard bool, problem string) {
	switch {
	case s == "":
		return "", false, "must be set, e.g. aks-managed-repository/* or ubuntu"
	case s == "*":
		return "", true, ""
	}
	if p, ok := strings.CutSuffix(s, "/*"); ok {
		s, wildcard = p, true
	}
	if strings.Contains(s, "*") {
		return "", false, "only a trailing /* (or * alone) is a wildcard"
	}
	if _, err := oci.ParseName(s); err != nil {
		return "", false, fmt.Sprintf("%q: %v", s, err)
	}
	return s, wildcard, ""
}

// byTarget finds the rule whose target holds name: an exact target equal
// to name, or the wildcard with the longest prefix of name. An exact rule
// beats a wildcard.
func (rs *rules) byTarget(name string) *rule {
	return rs.longest(func(r *rule) (string, bool) { return r.target, true }, name)
}

// bySource finds the rule whose source holds host/path: exact match, else
// the wildcard with the longest source prefix.
func (rs *rules) bySource(host, path string) *rule {
	return rs.longest(func(r *rule) (string, bool) {
		return r.source, oci.CanonicalRegistryHost(r.host) == oci.CanonicalRegistryHost(host)
	}, path)
}

// longest returns the rule whose key (target or source) covers name best:
// an exact key equal to name, else the wildcard with the longest prefix of
// name ("" covers everything).
func (rs *rules) longest(key func(*rule) (string, bool), name string) *rule {
	var best *rule
	bestLen := -1
	for _, r := range rs.all {
		k, ok := key(r)
		if !ok {
			continue
		}
		l := -1
		switch {
		case !r.wildcard && k == name:
			l = len(name) + 1
		case r.wildcard && k == "":
			l = 0
		case r.wildcard && strings.HasPrefix(name, k+"/"):
			l = len(k)
		}
		if l > bestLen {
			best, bestLen = r, l
		}
	}
	return best
}

// describe lists the rules for error messages, sorted.
func (rs *rules) describe() string {
	var out []string
	for _, r := range rs.all {
		out = append(out, r.host+"/"+r.source)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
