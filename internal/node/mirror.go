package node

import (
	"fmt"
	"sort"
	"strings"
)

// CacheRule is what node needs of a registry cache rule: its source and
// target repositories as written in registry.cacheRules.
type CacheRule struct {
	SourceRepo string // "host/path/*", "host/*" or "host/path"
	TargetRepo string // "prefix/*", "*" or an exact name
}

// Mirror pins one upstream registry host to the airlock registry.
type Mirror struct {
	// Upstream is the registry host as image references name it
	// ("mcr.microsoft.com", "docker.io", "host:port"); the certs.d
	// directory is named after it.
	Upstream string `json:"upstream"`
	// Prefix is the repository prefix on the airlock registry that serves
	// the whole upstream ("aks-managed-repository"), pulled path style
	// (override_path). Empty: mirror style, the airlock registry picks the
	// rule from containerd's ?ns=<upstream>.
	Prefix string `json:"prefix,omitempty"`
}

// Mirrors derives one mirror per upstream host of rules, sorted by host.
// A host with exactly one rule covering all of it ("host/*" → "prefix/*")
// is pulled path style under that prefix, as AKS does; a host with several
// rules, or a rule for part of it, is pulled mirror style (?ns=) so the
// airlock registry matches each path against the rules' sources.
func Mirrors(rules []CacheRule) ([]Mirror, error) {
	byHost := map[string][]CacheRule{}
	for _, r := range rules {
		host, _, ok := strings.Cut(r.SourceRepo, "/")
		if !ok || host == "" {
			return nil, fmt.Errorf("cache rule source %q has no registry host", r.SourceRepo)
		}
		byHost[host] = append(byHost[host], r)
	}
	out := make([]Mirror, 0, len(byHost))
	for host, rs := range byHost {
		m := Mirror{Upstream: host}
		if len(rs) == 1 && rs[0].SourceRepo == host+"/*" && strings.HasSuffix(rs[0].TargetRepo, "/*") {
			m.Prefix = strings.TrimSuffix(rs[0].TargetRepo, "/*")
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Upstream < out[j].Upstream })
	return out, nil
}

// MirrorEndpoint is how containerd reaches the airlock registry.
type MirrorEndpoint struct {
	// Registries are the replicas' host:port as the node reaches them, in
	// the order containerd tries them (or one virtual address).
	Registries []string
	TLS        bool   // https instead of http
	CAFile     string // PEM CA file path on the node; "" = system roots
}

// URL is the mirror URL for m on one registry replica ("host:port"): the
// registry root, or the path-style API root /v2/<prefix>.
func (e MirrorEndpoint) URL(m Mirror, registry string) string {
	scheme := "http"
	if e.TLS {
		scheme = "https"
	}
	u := scheme + "://" + registry
	if m.Prefix != "" {
		u += "/v2/" + m.Prefix
	}
	return u
}

// HostsTOML renders containerd's certs.d/<upstream>/hosts.toml for m. The
// default server and every host entry are the airlock registry: one
// [host] entry per replica, in the order of e.Registries, and the first
// replica as the server. containerd tries the host entries in order,
// moving to the next when one fails (a dead replica costs one connection
// error), then the server; a server naming the real upstream would be a
// fallback to the internet whenever airlock answers an error (DESIGN §4;
// research/registry.md §8).
func HostsTOML(m Mirror, e MirrorEndpoint) string {
	var b strings.Builder
	if len(e.Registries) == 0 {
		return ""
	}
	u := e.URL(m, e.Registries[0])
	fmt.Fprintf(&b, "# written by `airlock node apply`: %s is pulled only through the airlock registry.\n", m.Upstream)
	b.WriteString("# `airlock node reset` restores what was here before.\n")
	fmt.Fprintf(&b, "server = %q\n", u)
	b.WriteString("capabilities = [\"pull\", \"resolve\"]\n")
	if m.Prefix != "" {
		b.WriteString("override_path = true\n")
	}
	if e.CAFile != "" {
		fmt.Fprintf(&b, "ca = %q\n", e.CAFile)
	}
	for _, r := range e.Registries {
		fmt.Fprintf(&b, "\n[host.%q]\n", e.URL(m, r))
		b.WriteString("  capabilities = [\"pull\", \"resolve\"]\n")
		if m.Prefix != "" {
			b.WriteString("  override_path = true\n")
		}
		if e.CAFile != "" {
			fmt.Fprintf(&b, "  ca = %q\n", e.CAFile)
		}
	}
	return b.String()
}

// DefaultHostsTOML renders containerd's certs.d/_default/hosts.toml: the
// catch-all containerd reads for every registry without a directory of
// its own, that is every registry no cache rule names. Its server and
// host entries are the airlock registry, mirror style (containerd adds
// ?ns=<registry>), so such a pull reaches airlock, which answers
// NAME_UNKNOWN (no cache rule), and never the registry itself.
func DefaultHostsTOML(e MirrorEndpoint) string {
	if len(e.Registries) == 0 {
		return ""
	}
	body := HostsTOML(Mirror{Upstream: DefaultHostsDir}, e)
	_, rest, _ := strings.Cut(body, "\n")
	return "# written by `airlock node apply`: every registry without a cache rule goes to the airlock registry,\n" +
		"# which refuses it (NAME_UNKNOWN); containerd never reaches the registry itself.\n" + rest
}

// covers reports whether rule r's sourceRepo matches repository repo of
// registry host: "host/*", "host/path/*" (repo under path) or "host/repo".
func (r CacheRule) covers(host, repo string) bool {
	h, src, ok := strings.Cut(r.SourceRepo, "/")
	if !ok || h != host {
		return false
	}
	if prefix, ok := strings.CutSuffix(src, "*"); ok {
		return strings.HasPrefix(repo, prefix)
	}
	return src == repo
}

// splitImage splits an image reference into registry host and repository
// ("registry.k8s.io/pause:3.10" → "registry.k8s.io", "pause"); a
// reference without a registry is docker.io's, and docker.io's one-part
// names are under library/.
func splitImage(ref string) (host, repo string) {
	name, _, _ := strings.Cut(ref, "@")
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	host, repo, ok := strings.Cut(name, "/")
	if !ok || (!strings.ContainsAny(host, ".:") && host != "localhost") {
		host, repo = "docker.io", name
	}
	if host == "docker.io" && !strings.Contains(repo, "/") {
		repo = "library/" + repo
	}
	return host, repo
}
