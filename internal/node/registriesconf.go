package node

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Roles of the files written for CRI-O and podman.
const (
	roleRegistriesConf = "containers-registries.conf drop-in"
	roleCRIOPause      = "CRI-O pause_image drop-in"
)

// CRIOPauseDropIn is the CRI-O drop-in that pins the sandbox image (a
// path on the node; CRI-O reads crio.conf.d in lexical order after
// crio.conf, so 99- wins).
const CRIOPauseDropIn = "/etc/crio/crio.conf.d/99-airlock.conf"

// UnpinnedRepo is the repository prefix on the airlock registry that the
// catch-all entries send every registry without a cache rule to. No cache
// rule may use it as a target, so airlock answers NAME_UNKNOWN: the pull
// fails at airlock and never reaches the registry named.
const UnpinnedRepo = "airlock-unpinned"

// CatchAllDomains are the top-level domains the registries.conf
// catch-all covers with a `*.<tld>` prefix. containers-registries.conf has
// no entry matching every registry: a prefix is a host[:port][/namespace]
// or a `*.domain` wildcard (containers/image sysregistriesv2), so this is
// the widest list that can be written. It misses registries named by an
// IP address, by a single label other than localhost, under another
// top-level domain, and (a containers/image quirk: the wildcard matches
// the first occurrence of ".tld" in the host) hosts such as
// registry.company.com whose name holds ".com" before its end. The node's
// packet rules hold those; verify reports them.
var CatchAllDomains = []string{
	"ai", "app", "aws", "cloud", "cn", "co", "com", "corp", "de", "dev", "eu", "fr", "home",
	"in", "internal", "io", "jp", "lan", "local", "me", "net", "nl", "org", "ru", "sh", "tech", "uk", "us", "xyz",
}

// registryEntry is one [[registry]] table.
type registryEntry struct {
	prefix   string
	location string // host:port[/path] of the first replica
	mirrors  []string
	comment  string
}

// RegistriesConf renders the containers-registries.conf (v2) drop-in that
// pins CRI-O and podman to airlock: one [[registry]] per cache rule, whose
// prefix is the rule's source and whose location is the airlock registry
// and the rule's target path (the first replica; the others are its
// mirrors, so every endpoint containers/image tries is airlock), and the
// catch-all entries for every other registry. No entry is `blocked`: a
// blocked registry ignored its mirrors (containers/image#2497), and none
// needs to be, since the location itself is airlock. Unqualified names
// are not searched anywhere: `unqualified-search-registries = []` and
// short-name-mode enforcing, so a short name resolves only through an
// alias to a fully qualified name, which these entries then pin.
func RegistriesConf(rules []CacheRule, e MirrorEndpoint) (string, error) {
	if len(e.Registries) == 0 {
		return "", fmt.Errorf("no airlock registry address")
	}
	var entries []registryEntry
	seen := map[string]bool{}
	for _, r := range rules {
		prefix, target, err := rulePrefix(r)
		if err != nil {
			return "", err
		}
		if target == UnpinnedRepo || strings.HasPrefix(target, UnpinnedRepo+"/") {
			return "", fmt.Errorf("cache rule target %q uses %s, the repository node's catch-all sends unpinned registries to; rename the target", r.TargetRepo, UnpinnedRepo)
		}
		if seen[prefix] {
			continue
		}
		seen[prefix] = true
		entries = append(entries, entryFor(prefix, target, e, "cache rule "+r.SourceRepo+" → "+r.TargetRepo))
	}
	slices.SortFunc(entries, func(a, b registryEntry) int { return strings.Compare(a.prefix, b.prefix) })
	for _, d := range append([]string{"localhost"}, CatchAllDomains...) {
		prefix := "*." + d
		if d == "localhost" {
			prefix = d
		}
		if seen[prefix] {
			continue
		}
		entries = append(entries, entryFor(prefix, UnpinnedRepo, e, ""))
	}

	var b strings.Builder
	b.WriteString("# written by `airlock node apply`: CRI-O and podman pull only through the airlock registry.\n")
	b.WriteString("# `airlock node reset` removes this file. Every location and mirror below is airlock:\n")
	b.WriteString("# containers/image tries the mirrors, then the location, and nothing else.\n")
	b.WriteString("unqualified-search-registries = []\n")
	b.WriteString("short-name-mode = \"enforcing\"\n")
	insecure := !e.TLS
	catchAll := false
	for _, en := range entries {
		if en.comment == "" && !catchAll {
			catchAll = true
			b.WriteString("\n# catch-all: a registry without a cache rule is sent to airlock too, which refuses it\n")
			fmt.Fprintf(&b, "# (NAME_UNKNOWN under %s/): it is never reached directly. registries.conf has no\n", UnpinnedRepo)
			b.WriteString("# entry for every registry; IP addresses and other domains are held by the node's packet rules.\n")
		}
		b.WriteString("\n")
		if en.comment != "" {
			fmt.Fprintf(&b, "# %s\n", en.comment)
		}
		b.WriteString("[[registry]]\n")
		fmt.Fprintf(&b, "prefix = %q\n", en.prefix)
		fmt.Fprintf(&b, "location = %q\n", en.location)
		if insecure {
			b.WriteString("insecure = true\n")
		}
		for _, m := range en.mirrors {
			b.WriteString("[[registry.mirror]]\n")
			fmt.Fprintf(&b, "location = %q\n", m)
			if insecure {
				b.WriteString("insecure = true\n")
			}
		}
	}
	return b.String(), nil
}

func entryFor(prefix, target string, e MirrorEndpoint, comment string) registryEntry {
	loc := func(reg string) string {
		if target == "" {
			return reg
		}
		return reg + "/" + target
	}
	en := registryEntry{prefix: prefix, location: loc(e.Registries[0]), comment: comment}
	for _, r := range e.Registries[1:] {
		en.mirrors = append(en.mirrors, loc(r))
	}
	return en
}

// rulePrefix is the registries.conf prefix of a cache rule's source and
// the airlock repository path its location names: "host/path/*" →
// host/path and the target prefix; "host/*" → host; "host/path" (one
// repository) → host/path and the exact target.
func rulePrefix(r CacheRule) (prefix, target string, err error) {
	host, rest, ok := strings.Cut(r.SourceRepo, "/")
	if !ok || host == "" || rest == "" {
		return "", "", fmt.Errorf("cache rule source %q has no registry host and repository", r.SourceRepo)
	}
	target = strings.TrimSuffix(strings.TrimSuffix(r.TargetRepo, "*"), "/")
	switch {
	case rest == "*":
		return host, target, nil
	case strings.HasSuffix(rest, "/*"):
		return host + "/" + strings.TrimSuffix(rest, "/*"), target, nil
	}
	return r.SourceRepo, target, nil
}

// planRegistriesConf adds the registries.conf drop-in (CRI-O and podman)
// and, for CRI-O, the pause_image drop-in.
func (n *Node) planRegistriesConf(p *Plan, in Input, ep MirrorEndpoint, crio bool) error {
	c := in.Config
	if !strings.HasSuffix(c.RegistriesConf, ".conf") {
		return fmt.Errorf("node.registriesConf %s: containers/image reads only *.conf files in registries.conf.d; name it …/99-airlock.conf", c.RegistriesConf)
	}
	if len(in.CacheRules) == 0 {
		return fmt.Errorf("artifactSource Cache but registry.cacheRules is empty: add a cache rule (e.g. sourceRepo mcr.microsoft.com/*) or use artifactSource Direct")
	}
	if err := n.checkRegistriesFiles(c.RegistriesConf); err != nil {
		return err
	}
	text, err := RegistriesConf(in.CacheRules, ep)
	if err != nil {
		return fmt.Errorf("registries.conf: %w", err)
	}
	p.files = append(p.files, wantFile{path: c.RegistriesConf, role: roleRegistriesConf, content: text})
	dir := path.Dir(c.RegistriesConf)
	if path.Base(dir) == "registries.conf.d" {
		if later := laterDropIns(n.under(dir), path.Base(c.RegistriesConf)); len(later) > 0 {
			p.Notes = append(p.Notes, fmt.Sprintf("%s holds drop-ins read after %s (%s): an entry there for the same prefix wins over airlock's; airlock verify checks the merged result", dir, path.Base(c.RegistriesConf), strings.Join(later, ", ")))
		}
	} else if c.RegistriesConf != "/etc/containers/registries.conf" {
		p.Notes = append(p.Notes, fmt.Sprintf("node.registriesConf %s is not in a registries.conf.d directory: CRI-O and podman read it only when pointed at it (CONTAINERS_REGISTRIES_CONF)", c.RegistriesConf))
	}
	for _, r := range c.Registry {
		if strings.HasPrefix(r, "[") {
			p.Notes = append(p.Notes, fmt.Sprintf("node.registry %s is an IPv6 address: containers/image as in podman 4.3 rejects it in a registries.conf location (\"rewriting reference: invalid reference format\"), so CRI-O and podman pulls fail, closed (any entry that names it, mirror or location); use IPv4 replicas for them", r))
		}
	}
	for _, r := range in.CacheRules {
		if r.TargetRepo == "*" {
			p.Notes = append(p.Notes, fmt.Sprintf("cache rule %s → * makes every name on airlock that upstream's: the catch-all's %s/<name> pulls are asked of it instead of refused (still through airlock, never directly)", r.SourceRepo, UnpinnedRepo))
		}
	}
	if user, _, _ := readFile(n.under("/root/.config/containers/registries.conf")); user != "" {
		p.Notes = append(p.Notes, "/root/.config/containers/registries.conf exists: podman run as root reads it instead of /etc/containers/registries.conf.d, so airlock's drop-in does not apply to it; remove that file")
	}
	if sandboxHost, _, _ := strings.Cut(c.SandboxImage, "/"); crio && !slices.ContainsFunc(in.CacheRules, func(r CacheRule) bool {
		return strings.HasPrefix(r.SourceRepo, sandboxHost+"/")
	}) {
		return fmt.Errorf("node.sandboxImage %s: no cache rule covers %s, so CRI-O could not pull the pod sandbox image (airlock refuses registries without a rule, kubeadm#2020): add a cache rule (sourceRepo %s/*) or set node.sandboxImage to an image a rule covers", c.SandboxImage, sandboxHost, sandboxHost)
	}
	if crio {
		p.files = append(p.files, wantFile{path: CRIOPauseDropIn, role: roleCRIOPause, content: crioPauseDropIn(c.SandboxImage)})
	}
	return n.planRegistryCA(p, ep, "/etc/containers/certs.d", roleContainersCA)
}

// Roles of the registry CA files written for containers/image and dockerd.
const (
	roleContainersCA = "containers registry CA"
	roleDockerCA     = "dockerd registry CA"
)

// planRegistryCA copies node.registryCAFile to <dir>/<host:port>/ca.crt
// for every airlock replica: containers/image and dockerd read a
// registry's CA there, not from a path in their configuration.
func (n *Node) planRegistryCA(p *Plan, ep MirrorEndpoint, dir, role string) error {
	if ep.CAFile == "" {
		return nil
	}
	ca, exists, err := readFile(n.under(ep.CAFile))
	if err != nil || !exists {
		return fmt.Errorf("node.registryCAFile %s: cannot read it under the root (%v): CRI-O, podman and dockerd need its content copied to %s", ep.CAFile, err, dir)
	}
	for _, r := range ep.Registries {
		p.files = append(p.files, wantFile{path: path.Join(dir, r, "ca.crt"), role: role + " " + r, content: ca})
	}
	return nil
}

// crioPauseDropIn pins CRI-O's sandbox image.
func crioPauseDropIn(image string) string {
	return "# written by `airlock node apply`: the pod sandbox image, pulled through airlock like any image.\n" +
		"# `airlock node reset` removes this file.\n" +
		"[crio.image]\n" +
		fmt.Sprintf("pause_image = %q\n", image)
}

// laterDropIns lists the *.conf files of dir that sort after name
// (containers/image reads them in lexical order; the last wins).
func laterDropIns(dir, name string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".conf") && e.Name() > name {
			out = append(out, e.Name())
		}
	}
	return out
}

// checkRegistriesFiles refuses what containers/image would refuse in the
// files it reads beside airlock's drop-in: TOML it cannot parse, a main
// file mixing the v1 ([registries.search|insecure|block]) and v2 formats,
// or a drop-in in the v1 format ("registry must be in v2 format"). With
// any of them CRI-O and podman fail to load their registries
// configuration at all, so pinning would change nothing; a v1 main file
// alone is fine (it is converted, and the drop-ins merge over it).
func (n *Node) checkRegistriesFiles(ours string) error {
	files := []string{"/etc/containers/registries.conf"}
	dir := "/etc/containers/registries.conf.d"
	if ents, err := os.ReadDir(n.under(dir)); err == nil {
		for _, e := range ents {
			if p := path.Join(dir, e.Name()); !e.IsDir() && strings.HasSuffix(e.Name(), ".conf") && p != ours {
				files = append(files, p)
			}
		}
	}
	for i, f := range files {
		b, exists, err := readFile(n.under(f))
		if err != nil || !exists {
			continue
		}
		var doc map[string]any
		if err := toml.Unmarshal([]byte(b), &doc); err != nil {
			return fmt.Errorf("%s is not valid TOML (%v): CRI-O and podman cannot load their registries configuration; fix it before airlock pins them", f, err)
		}
		v1 := false
		if regs, ok := doc["registries"].(map[string]any); ok {
			for _, k := range []string{"search", "insecure", "block"} {
				if t, ok := regs[k].(map[string]any); ok {
					if l, ok := t["registries"].([]any); ok && len(l) > 0 {
						v1 = true
					}
				}
			}
		}
		v2 := false
		for _, k := range []string{"registry", "unqualified-search-registries", "short-name-mode", "aliases", "credential-helpers"} {
			if _, ok := doc[k]; ok {
				v2 = true
			}
		}
		switch {
		case v1 && i > 0:
			return fmt.Errorf("%s is in the v1 format ([registries.*]): containers/image refuses a v1 drop-in (\"registry must be in v2 format\"), so CRI-O and podman cannot load their registries configuration; rewrite it as [[registry]] tables", f)
		case v1 && v2:
			return fmt.Errorf("%s mixes the v1 ([registries.*]) and v2 formats: containers/image refuses it, so CRI-O and podman cannot load their registries configuration; use one format", f)
		}
	}
	return nil
}
