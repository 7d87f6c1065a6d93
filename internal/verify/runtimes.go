package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// What the registries.conf and daemon.json rows say about what no
// configuration can pin.
const (
	registriesConfUnpinnable = "containers-registries.conf cannot pin every registry: a prefix is host[:port][/namespace] or a *.domain wildcard, so registries named by an IP address, by a single label other than localhost, or under a domain without a *.<tld> entry are pulled from themselves; only the node's packet rules hold them"
	dockerUnpinnable         = "dockerd's registry-mirrors serve docker.io only (moby#18818) and dockerd falls back to registry-1.docker.io when every mirror fails: every other registry, and docker.io after a mirror failure, is held only by the node's packet rules"
)

// unpinnedSamples are registries the registries.conf check resolves:
// each must end at airlock (its rule's target, or the catch-all).
var unpinnedSamples = []string{
	"docker.io/library/airlock-verify:1",
	"quay.io/airlock-verify/image:1",
	"ghcr.io/airlock-verify/image:1",
	"registry.example.com/airlock-verify/image:1",
	"public.ecr.aws/airlock-verify/image:1",
	"localhost/airlock-verify:1",
}

// regEndpoint is one containers-registries.conf location.
type regEndpoint struct {
	Location       string `toml:"location"`
	Insecure       bool   `toml:"insecure"`
	PullFromMirror string `toml:"pull-from-mirror"`
}

// regEntry is one [[registry]] table.
type regEntry struct {
	Prefix string `toml:"prefix"`
	regEndpoint
	Mirrors            []regEndpoint `toml:"mirror"`
	Blocked            bool          `toml:"blocked"`
	MirrorByDigestOnly bool          `toml:"mirror-by-digest-only"`
	file               string
}

// registriesFile is one registries.conf file, v2 or v1.
type registriesFile struct {
	Registries  []regEntry `toml:"registry"`
	Unqualified *[]string  `toml:"unqualified-search-registries"`
	V1          struct {
		Search   struct{ Registries []string } `toml:"search"`
		Insecure struct{ Registries []string } `toml:"insecure"`
		Block    struct{ Registries []string } `toml:"block"`
	} `toml:"registries"`
}

// registriesConf is the merged configuration containers/image would use.
type registriesConf struct {
	Files       []string // read, in order
	Registries  []regEntry
	Unqualified []string
}

// parseRegistriesFile reads one file the way containers/image does: v1
// tables become v2 entries; mixing both, or v1 in a drop-in, is an error.
func parseRegistriesFile(b []byte, name string, dropIn bool) (registriesFile, error) {
	var f registriesFile
	if err := toml.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("%s: %w", name, err)
	}
	v1 := len(f.V1.Search.Registries)+len(f.V1.Insecure.Registries)+len(f.V1.Block.Registries) > 0
	if v1 {
		if dropIn {
			return f, fmt.Errorf("%s: a drop-in must be in the v2 format, not v1 ([registries.*])", name)
		}
		if len(f.Registries) > 0 || f.Unqualified != nil {
			return f, fmt.Errorf("%s: mixes the v1 and v2 formats", name)
		}
		byLoc := map[string]*regEntry{}
		var order []string
		get := func(l string) *regEntry {
			l = strings.TrimRight(l, "/")
			if e, ok := byLoc[l]; ok {
				return e
			}
			byLoc[l] = &regEntry{Prefix: l, regEndpoint: regEndpoint{Location: l}}
			order = append(order, l)
			return byLoc[l]
		}
		for _, l := range f.V1.Block.Registries {
			get(l).Blocked = true
		}
		for _, l := range f.V1.Insecure.Registries {
			get(l).Insecure = true
		}
		for _, l := range order {
			f.Registries = append(f.Registries, *byLoc[l])
		}
		s := slices.Clone(f.V1.Search.Registries)
		if s == nil {
			s = []string{}
		}
		f.Unqualified = &s
	}
	for i := range f.Registries {
		r := &f.Registries[i]
		r.file = name
		r.Location = strings.TrimRight(r.Location, "/")
		r.Prefix = strings.TrimRight(r.Prefix, "/")
		if strings.HasPrefix(r.Location, "http://") || strings.HasPrefix(r.Location, "https://") {
			return f, fmt.Errorf("%s: location %q: URI schemes are not supported", name, r.Location)
		}
		if r.Prefix == "" {
			if r.Location == "" {
				return f, fmt.Errorf("%s: a [[registry]] has neither prefix nor location", name)
			}
			r.Prefix = r.Location
		}
		if strings.HasPrefix(r.Prefix, "*.") && strings.ContainsAny(r.Prefix, "/@:") {
			return f, fmt.Errorf("%s: wildcard prefix %q must be *.example.com", name, r.Prefix)
		}
		if r.Location == "" && !strings.HasPrefix(r.Prefix, "*.") {
			return f, fmt.Errorf("%s: prefix %q has no location", name, r.Prefix)
		}
		for j := range r.Mirrors {
			r.Mirrors[j].Location = strings.TrimRight(r.Mirrors[j].Location, "/")
			if r.Mirrors[j].Location == "" {
				return f, fmt.Errorf("%s: a mirror of %q has no location", name, r.Prefix)
			}
		}
	}
	return f, nil
}

// loadRegistriesConf reads the files containers/image reads when run as
// root, under root: the main file (or root's per-user file, which
// replaces the system ones), then the drop-ins in lexical order (later
// entries with the same prefix win). node.registriesConf elsewhere is
// not read: neither CRI-O nor podman reads it unless pointed at it.
func loadRegistriesConf(root string) (registriesConf, error) {
	var rc registriesConf
	mainFile, dirs := "/etc/containers/registries.conf", []string{"/etc/containers/registries.conf.d", "/root/.config/containers/registries.conf.d"}
	if _, err := os.Stat(filepath.Join(root, "/root/.config/containers/registries.conf")); err == nil {
		mainFile, dirs = "/root/.config/containers/registries.conf", dirs[1:]
	}
	byPrefix := map[string]regEntry{}
	apply := func(name string, dropIn bool) error {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		f, err := parseRegistriesFile(b, name, dropIn)
		if err != nil {
			return err
		}
		rc.Files = append(rc.Files, name)
		if !dropIn {
			// Within one file the first entry for a prefix wins.
			for _, r := range f.Registries {
				if _, ok := byPrefix[r.Prefix]; !ok {
					byPrefix[r.Prefix] = r
				}
			}
		} else {
			for _, r := range f.Registries {
				byPrefix[r.Prefix] = r
			}
		}
		if f.Unqualified != nil {
			rc.Unqualified = *f.Unqualified
		}
		return nil
	}
	if err := apply(mainFile, false); err != nil {
		return rc, err
	}
	var dropIns []string
	for _, d := range dirs {
		ents, _ := os.ReadDir(filepath.Join(root, d))
		for _, e := range ents {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".conf") {
				dropIns = append(dropIns, path.Join(d, e.Name()))
			}
		}
	}
	for _, d := range dropIns {
		if err := apply(d, true); err != nil {
			return rc, err
		}
	}
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for k := range byPrefix {
			if !yield(k) {
				return
			}
		}
	}) {
		rc.Registries = append(rc.Registries, byPrefix[p])
	}
	return rc, nil
}

// matchPrefix is containers/image's refMatchingPrefix: the length of ref
// the prefix covers, -1 when it does not match. A *.domain prefix
// matches the first ".domain" in ref when it ends the host.
func matchPrefix(ref, prefix string) int {
	if strings.HasPrefix(prefix, "*.") {
		i := strings.Index(ref, prefix[1:])
		if i < 0 || strings.Contains(ref[:i], "/") {
			return -1
		}
		i += len(prefix) - 1
		if i == len(ref) || strings.ContainsRune(":/@", rune(ref[i])) {
			return i
		}
		return -1
	}
	switch {
	case len(ref) < len(prefix) || !strings.HasPrefix(ref, prefix):
		return -1
	case len(ref) == len(prefix) || strings.ContainsRune(":/@", rune(ref[len(prefix)])):
		return len(prefix)
	}
	return -1
}

// pullSource is one endpoint containers/image tries for a reference.
type pullSource struct {
	endpoint regEndpoint
	ref      string // the reference rewritten for it
}

// find returns the entry with the longest prefix matching ref (nil when
// none does) and the endpoints containers/image tries, in order: the
// mirrors, then the location.
func (rc registriesConf) find(ref string) (*regEntry, []pullSource) {
	var best *regEntry
	for i := range rc.Registries {
		r := &rc.Registries[i]
		if matchPrefix(ref, r.Prefix) >= 0 && (best == nil || len(r.Prefix) > len(best.Prefix)) {
			best = r
		}
	}
	if best == nil {
		return nil, []pullSource{{endpoint: regEndpoint{Location: hostOfRef(ref)}, ref: ref}}
	}
	n := matchPrefix(ref, best.Prefix)
	digested := strings.Contains(ref, "@")
	var eps []regEndpoint
	for _, m := range best.Mirrors {
		switch {
		case best.MirrorByDigestOnly && !digested, m.PullFromMirror == "digest-only" && !digested, m.PullFromMirror == "tag-only" && digested:
			continue
		}
		eps = append(eps, m)
	}
	eps = append(eps, best.regEndpoint)
	var out []pullSource
	for _, e := range eps {
		if e.Location == "" { // a wildcard without a location: the reference as is
			out = append(out, pullSource{endpoint: regEndpoint{Location: hostOfRef(ref), Insecure: e.Insecure}, ref: ref})
			continue
		}
		out = append(out, pullSource{endpoint: e, ref: e.Location + ref[n:]})
	}
	return best, out
}

func hostOfRef(ref string) string {
	h, _, _ := strings.Cut(ref, "/")
	return h
}

// isAirlock reports whether location (host:port[/path]) is on one of the
// airlock registry replicas.
func isAirlock(location string, registries []string) bool {
	return slices.Contains(registries, hostOfRef(location))
}

// runtimeFound reports whether one of the binaries is under root (or on
// PATH when root is "/"), or one of the paths exists under root.
func runtimeFound(root string, bins []string, paths ...string) bool {
	for _, b := range bins {
		for _, d := range []string{"/usr/bin", "/usr/local/bin", "/usr/sbin", "/usr/local/sbin"} {
			if _, err := os.Stat(filepath.Join(root, d, b)); err == nil {
				return true
			}
		}
		if root == "/" {
			if _, err := exec.LookPath(b); err == nil {
				return true
			}
		}
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			return true
		}
	}
	return false
}

// runtimeProbes are the rows for CRI-O and podman (registries.conf) and
// Docker (daemon.json), for each runtime found under the root.
func (b *battery) runtimeProbes() []probe {
	var ps []probe
	if runtimeFound(b.root, []string{"crio", "podman"}, b.registriesConf) {
		target := b.registriesConf
		if target == "" {
			target = "registries.conf"
		}
		ps = append(ps,
			probe{channel: "registries-conf-pinned", target: target, run: b.registriesConfPinned},
			probe{channel: "registries-conf-image", target: b.t.RegistryImage, expected: Reachable, missing: need("registryImage", b.t.RegistryImage),
				budget: positiveBudget, run: b.registriesConfImage},
			probe{channel: "registries-conf-unpinnable", expected: Blocked, run: func(context.Context) (Outcome, string) { return NotTestable, registriesConfUnpinnable }},
		)
	}
	if runtimeFound(b.root, []string{"dockerd"}, "/etc/docker", b.dockerDaemonConfig) {
		ps = append(ps,
			probe{channel: "docker-mirror", target: b.dockerDaemonConfig, run: b.dockerMirror},
			probe{channel: "docker-unpinnable", expected: Blocked, run: func(context.Context) (Outcome, string) { return NotTestable, dockerUnpinnable }},
		)
	}
	return ps
}

// onlyContainersImage reports whether CRI-O or podman is on the node and
// containerd is not: the containerd registry-image row has nothing to
// check then.
func (b *battery) onlyContainersImage() bool {
	cfg := b.containerdConfig
	if cfg == "" {
		cfg = DefaultContainerdConfig
	}
	_, ctrd := containerdFound(b.root, cfg)
	return !ctrd && runtimeFound(b.root, []string{"crio", "podman"}, b.registriesConf)
}

// registriesConfPinned resolves sample references of registries with and
// without a cache rule, short names, and the registry image through the
// merged registries.conf: every endpoint containers/image would try must
// be airlock. One that is not is a way out (a fallback) and reported as
// a leak of the configuration, whatever the packet rules then do.
func (b *battery) registriesConfPinned(ctx context.Context) (Outcome, string) {
	if len(b.registries) == 0 {
		return NotTested, "set node.registry: the airlock registry the locations must name"
	}
	rc, err := loadRegistriesConf(b.root)
	if err != nil {
		return Failed, fmt.Sprintf("containers/image would refuse the configuration, so CRI-O and podman do not start with it: %v", err)
	}
	refs := slices.Clone(unpinnedSamples)
	if b.t.RegistryImage != "" {
		if r, err := parseImageRef(b.t.RegistryImage); err == nil {
			refs = append(refs, refString(r))
		}
	}
	for _, r := range rc.Registries {
		if !strings.HasPrefix(r.Prefix, "*.") {
			refs = append(refs, r.Prefix+"/airlock-verify:1")
		}
	}
	for _, s := range rc.Unqualified {
		refs = append(refs, s+"/airlock-verify:1")
	}
	var leaks, ok []string
	seen := map[string]bool{}
	for _, ref := range refs {
		if seen[ref] {
			continue
		}
		seen[ref] = true
		entry, srcs := rc.find(ref)
		var bad []string
		for _, s := range srcs {
			if !isAirlock(s.endpoint.Location, b.registries) {
				bad = append(bad, s.endpoint.Location)
			}
		}
		switch {
		case entry == nil:
			leaks = append(leaks, fmt.Sprintf("%s has no [[registry]] entry: pulled from %s directly", ref, hostOfRef(ref)))
		case entry.Blocked:
			ok = append(ok, fmt.Sprintf("%s blocked (%s)", ref, entry.file))
		case len(bad) > 0:
			leaks = append(leaks, fmt.Sprintf("%s (prefix %q in %s) falls back to %s", ref, entry.Prefix, entry.file, strings.Join(bad, ", ")))
		default:
			ok = append(ok, fmt.Sprintf("%s → %s", ref, srcs[0].ref))
		}
	}
	files := strings.Join(rc.Files, ", ")
	if len(rc.Unqualified) > 0 {
		ok = append(ok, "short names searched in "+strings.Join(rc.Unqualified, ", "))
	}
	if len(leaks) > 0 {
		return Failed, fmt.Sprintf("registries.conf (%s) sends pulls past airlock: %s", files, strings.Join(leaks, "; "))
	}
	return Blocked, fmt.Sprintf("every endpoint is airlock (%s): %s", files, strings.Join(ok, "; "))
}

func refString(r imageRef) string {
	sep := ":"
	if strings.HasPrefix(r.Ref, "sha256:") {
		sep = "@"
	}
	return r.Host + "/" + r.Repo + sep + r.Ref
}

// registriesConfImage pulls the registry image's manifest and config the
// way CRI-O and podman would: through the first endpoint registries.conf
// names for it, which must be airlock.
func (b *battery) registriesConfImage(ctx context.Context) (Outcome, string) {
	ref, err := parseImageRef(b.t.RegistryImage)
	if err != nil {
		return Failed, err.Error()
	}
	rc, err := loadRegistriesConf(b.root)
	if err != nil {
		return Failed, err.Error()
	}
	entry, srcs := rc.find(refString(ref))
	if entry == nil {
		return Failed, fmt.Sprintf("no [[registry]] entry for %s in %s: CRI-O and podman pull it from %s itself", b.t.RegistryImage, strings.Join(rc.Files, ", "), ref.Host)
	}
	var tried []string
	for _, s := range srcs {
		if !isAirlock(s.endpoint.Location, b.registries) {
			continue // never tried here: a pull there would not be airlock's
		}
		host := hostOfRef(s.ref)
		rest := strings.TrimPrefix(s.ref, host+"/")
		r := imageRef{Repo: rest, Ref: ref.Ref}
		if i := strings.LastIndexAny(rest, ":@"); i > 0 {
			r.Repo = rest[:i]
		}
		scheme := "https"
		if !b.registryTLS {
			scheme = "http"
		}
		h := hostEntry{URL: scheme + "://" + host}
		if b.registryCA != "" {
			h.CA = []string{b.registryCA}
		}
		desc, err := b.fetchFromMirror(ctx, "", h, r)
		if err == nil {
			return Reachable, fmt.Sprintf("%s (prefix %q in %s)", desc, entry.Prefix, entry.file)
		}
		tried = append(tried, fmt.Sprintf("%s: %v", s.ref, err))
	}
	if len(tried) == 0 {
		return Failed, fmt.Sprintf("prefix %q in %s names no airlock endpoint for %s", entry.Prefix, entry.file, b.t.RegistryImage)
	}
	return Failed, "no airlock endpoint served the image: " + strings.Join(tried, "; ")
}

// dockerMirror checks daemon.json: registry-mirrors must name airlock
// replicas only (another mirror is a way out), and at least one.
func (b *battery) dockerMirror(ctx context.Context) (Outcome, string) {
	file := b.dockerDaemonConfig
	if file == "" {
		file = "/etc/docker/daemon.json"
	}
	raw, err := os.ReadFile(filepath.Join(b.root, file))
	if err != nil {
		return Failed, fmt.Sprintf("dockerd is on the node but %s cannot be read (%v): it pulls docker.io from registry-1.docker.io directly", file, err)
	}
	mirrors, err := parseDaemonMirrors(raw)
	if err != nil {
		return Failed, fmt.Sprintf("%s: %v", file, err)
	}
	if len(mirrors) == 0 {
		return Failed, fmt.Sprintf("%s has no registry-mirrors: dockerd pulls docker.io from registry-1.docker.io directly", file)
	}
	var bad []string
	for _, m := range mirrors {
		u, err := url.Parse(m)
		if err != nil || !slices.Contains(b.registries, u.Host) {
			bad = append(bad, m)
		}
	}
	if len(bad) > 0 {
		return Failed, fmt.Sprintf("%s registry-mirrors names %s, not airlock (node.registry %s)", file, strings.Join(bad, ", "), strings.Join(b.registries, ", "))
	}
	return Blocked, fmt.Sprintf("%s registry-mirrors: %s (airlock only)", file, strings.Join(mirrors, ", "))
}

// parseDaemonMirrors reads registry-mirrors from daemon.json: it must be
// one JSON object and the key, when present, a list of strings.
func parseDaemonMirrors(raw []byte) ([]string, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("is not a JSON object, dockerd does not start with it: %w", err)
	}
	if doc == nil {
		return nil, fmt.Errorf("is null, not a JSON object")
	}
	m, ok := doc["registry-mirrors"]
	if !ok {
		return nil, nil
	}
	var out []string
	if err := json.Unmarshal(m, &out); err != nil {
		return nil, fmt.Errorf("registry-mirrors is not a list of strings: %w", err)
	}
	sort.Strings(out)
	return out, nil
}
