package node

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// DefaultCertsDir is where airlock points containerd's registry
// config_path when it is not set (a path on the node).
const DefaultCertsDir = "/etc/containerd/certs.d"

// DefaultHostsDir is the directory under certs.d whose hosts.toml
// containerd (1.6.17 and later, 1.7, 2.x) reads for every registry that has
// no directory of its own.
const DefaultHostsDir = "_default"

// defaultHostsMin is the first containerd release that reads
// certs.d/_default: 1.6.17 (containerd#8065, a backport of #7607).
var defaultHostsMin = [3]int{1, 6, 17}

var containerdSemver = regexp.MustCompile(`(?:^|[ v])(\d+)\.(\d+)\.(\d+)`)

// containerdVersion reads major.minor.patch from `containerd --version`
// ("containerd github.com/containerd/containerd 1.6.20~ds1 …").
func containerdVersion(line string) ([3]int, bool) {
	m := containerdSemver.FindStringSubmatch(line)
	if m == nil {
		return [3]int{}, false
	}
	var v [3]int
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	return v, true
}

// criKeys are the containerd config keys airlock edits, for one config
// version, as TOML key paths.
type criKeys struct {
	registry []string // the CRI registry table
	sandbox  []string // the sandbox (pause) image key
}

// containerdKeys returns the keys of config version 2 (containerd 1.6 and
// 1.7; 2.x migrates it on load) or 3 (containerd 2.x).
func containerdKeys(version int) criKeys {
	if version >= 3 {
		img := []string{"plugins", "io.containerd.cri.v1.images"}
		return criKeys{
			registry: append(slices.Clone(img), "registry"),
			sandbox:  append(slices.Clone(img), "pinned_images", "sandbox"),
		}
	}
	cri := []string{"plugins", "io.containerd.grpc.v1.cri"}
	return criKeys{
		registry: append(slices.Clone(cri), "registry"),
		sandbox:  append(slices.Clone(cri), "sandbox_image"),
	}
}

// registrySection is the CRI registry table header for a containerd
// config version: 2 (containerd 1.x) or 3 (containerd 2.x).
func registrySection(version int) string { return tableHeader(containerdKeys(version).registry) }

// containerdEdit is the outcome of editContainerdConfig.
type containerdEdit struct {
	content  string // the config to write (== input when unchanged)
	changed  bool
	version  int    // the config's version (2 or 3)
	certsDir string // the certs.d directory containerd reads (path on the node)
	notes    []string
}

// editContainerdConfig makes containerd's CRI read registry hosts files
// from one certs.d directory and pins the pod sandbox image to sandbox
// ("" leaves it alone). It edits the text line by line, so comments and
// the rest of the file are kept; the result is decoded again and checked,
// so a layout the line editor cannot change (a dotted key, an inline
// table) is refused with what to set by hand, never written wrong.
//
//   - config_path unset or "": set to DefaultCertsDir.
//   - config_path naming several directories (a:b, containerd 2's default):
//     set to the first. containerd 2's transfer service, which pulls for
//     the CRI by default, reads the whole value as one directory
//     (containerd#12636) and would find no hosts file at all.
//   - config_path naming one directory: kept; the hosts files go there.
//   - registry.mirrors, or registry.configs."host".tls: refused. Beside
//     config_path they stop the CRI plugin from loading (containerd#12612).
//
// exists is false when there is no config file: then a version 2 file
// (read by containerd 1.6 to 2.x) is written.
func editContainerdConfig(content string, exists bool, sandbox string) (containerdEdit, error) {
	return editContainerdConfigVersion(content, exists, sandbox, 2)
}

// editContainerdConfigVersion is editContainerdConfig writing a missing
// file as config version newVersion (3 when the binary is containerd 2,
// which would otherwise migrate version 2 on every start).
func editContainerdConfigVersion(content string, exists bool, sandbox string, newVersion int) (containerdEdit, error) {
	meaningful := false
	for l := range strings.SplitSeq(content, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			meaningful = true
			break
		}
	}
	if exists && !meaningful {
		if _, err := decodeTOML(content); err != nil {
			return containerdEdit{}, fmt.Errorf("not valid TOML (containerd would not start with it either): %w", err)
		}
	}
	if !exists || !meaningful {
		if newVersion != 3 {
			newVersion = 2
		}
		k := containerdKeys(newVersion)
		c := content
		if c != "" && !strings.HasSuffix(c, "\n") {
			c += "\n"
		}
		c += fmt.Sprintf("version = %d\n", newVersion)
		if sandbox != "" {
			c += "\n" + tableHeader(k.sandbox[:len(k.sandbox)-1]) + "\n  " + k.sandbox[len(k.sandbox)-1] + " = " + tomlString(sandbox) + "\n"
		}
		c += "\n" + tableHeader(k.registry) + "\n  config_path = " + tomlString(DefaultCertsDir) + "\n"
		return containerdEdit{content: c, changed: true, version: newVersion, certsDir: DefaultCertsDir,
			notes: []string{"wrote containerd's config (it had none): containerd must restart to read it"}}, nil
	}
	doc, err := decodeTOML(content)
	if err != nil {
		return containerdEdit{}, fmt.Errorf("not valid TOML (containerd would not start with it either): %w", err)
	}
	version := 0
	if v, ok := doc["version"].(int64); ok {
		version = int(v)
	}
	switch {
	case version < 2:
		return containerdEdit{}, errors.New("containerd config has no `version = 2` (or 3) line: containerd would read it as version 1, whose registry keys airlock does not write; add the version line or set the CRI registry config_path yourself")
	case version > 3:
		return containerdEdit{}, fmt.Errorf("containerd config version %d is newer than airlock knows (2: containerd 1.x, 3: containerd 2.x)", version)
	}
	k := containerdKeys(version)
	if err := refuseMirrors(doc, k.registry); err != nil {
		return containerdEdit{}, err
	}
	e := containerdEdit{version: version}
	lines := strings.Split(content, "\n")

	cur, _ := lookup(doc, append(slices.Clone(k.registry), "config_path")).(string)
	dirs := filepath.SplitList(cur)
	dirs = slices.DeleteFunc(dirs, func(s string) bool { return s == "" })
	switch {
	case len(dirs) == 0:
		e.certsDir = DefaultCertsDir
		lines = setKey(lines, k.registry, "config_path", DefaultCertsDir)
		e.notes = append(e.notes, "set config_path in containerd's config to "+DefaultCertsDir)
	case len(dirs) > 1:
		e.certsDir = dirs[0]
		lines = setKey(lines, k.registry, "config_path", dirs[0])
		e.notes = append(e.notes, fmt.Sprintf("containerd's config_path named several directories (%s): set it to the first, %s, where airlock writes its hosts files (containerd 2's transfer service reads a list as one directory and would read no hosts file: containerd#12636)", cur, dirs[0]))
	default:
		e.certsDir = dirs[0]
		if dirs[0] != cur { // "a:" or ":a"
			lines = setKey(lines, k.registry, "config_path", dirs[0])
		}
		if e.certsDir != DefaultCertsDir {
			e.notes = append(e.notes, fmt.Sprintf("containerd's config_path is already %s: airlock writes its hosts files there and leaves the setting alone", e.certsDir))
		}
	}
	if !filepath.IsAbs(e.certsDir) {
		return containerdEdit{}, fmt.Errorf("config_path %q is not an absolute path: set it to a directory such as %s", e.certsDir, DefaultCertsDir)
	}
	if sandbox != "" {
		was, _ := lookup(doc, k.sandbox).(string)
		if was != sandbox {
			lines = setKey(lines, k.sandbox[:len(k.sandbox)-1], k.sandbox[len(k.sandbox)-1], sandbox)
			if was == "" {
				e.notes = append(e.notes, "pinned the sandbox (pause) image to "+sandbox)
			} else {
				e.notes = append(e.notes, fmt.Sprintf("pinned the sandbox (pause) image to %s (was %s)", sandbox, was))
			}
		}
	}
	e.content = strings.Join(lines, "\n")
	e.changed = e.content != content
	if !e.changed {
		return e, nil
	}
	// The edit must read back as intended.
	got, err := decodeTOML(e.content)
	want := func(key []string, v string) error {
		if s, _ := lookup(got, key).(string); s != v {
			return fmt.Errorf("containerd config sets %s in a form apply does not edit (a dotted key or an inline table): set %s = %s in %s yourself", strings.Join(key, "."), key[len(key)-1], tomlString(v), tableHeader(key[:len(key)-1]))
		}
		return nil
	}
	if err != nil {
		return containerdEdit{}, fmt.Errorf("containerd config sets the CRI registry or sandbox keys in a form apply does not edit (%v): set %s config_path = %s and %s = %s yourself",
			err, tableHeader(k.registry), tomlString(e.certsDir), strings.Join(k.sandbox, "."), tomlString(sandbox))
	}
	if err := want(append(slices.Clone(k.registry), "config_path"), e.certsDir); err != nil {
		return containerdEdit{}, err
	}
	if sandbox != "" {
		if err := want(k.sandbox, sandbox); err != nil {
			return containerdEdit{}, err
		}
	}
	e.notes = append(e.notes, "containerd must restart to read its changed config")
	return e, nil
}

// refuseMirrors returns an error naming what to remove when the registry
// table sets mirrors or a configs TLS setting: beside config_path
// containerd refuses to load the CRI plugin.
func refuseMirrors(doc map[string]any, registry []string) error {
	reg := tableHeader(registry)
	if m, _ := lookup(doc, append(slices.Clone(registry), "mirrors")).(map[string]any); len(m) > 0 {
		return fmt.Errorf("containerd config sets %s.mirrors (%s): beside config_path containerd does not load its CRI plugin (\"`mirrors` cannot be set when `config_path` is provided\", containerd#12612); remove every [%s.mirrors...] table (airlock writes a hosts.toml per registry instead) and run apply again",
			strings.TrimSuffix(reg, "]"), strings.Join(sortedKeys(m), ", "), strings.Trim(reg, "[]"))
	}
	if m, _ := lookup(doc, append(slices.Clone(registry), "configs")).(map[string]any); len(m) > 0 {
		var tlsHosts []string
		for _, h := range sortedKeys(m) {
			if c, _ := m[h].(map[string]any); c != nil && c["tls"] != nil {
				tlsHosts = append(tlsHosts, h)
			}
		}
		if len(tlsHosts) > 0 {
			return fmt.Errorf("containerd config sets %s.configs.<host>.tls (%s): beside config_path containerd 1.x does not load its CRI plugin (\"`configs.tls` cannot be set when `config_path` is provided\"); remove those tls tables (put a CA in the host's hosts.toml instead) and run apply again",
				strings.TrimSuffix(reg, "]"), strings.Join(tlsHosts, ", "))
		}
	}
	return nil
}

// decodeTOML decodes a document into maps; errors name the line.
func decodeTOML(content string) (map[string]any, error) {
	var doc map[string]any
	if err := toml.Unmarshal([]byte(content), &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("line %d, column %d: %v", row, col, de)
		}
		return nil, err
	}
	return doc, nil
}

// lookup returns the value at key in doc, nil when absent.
func lookup(doc map[string]any, key []string) any {
	var v any = doc
	for _, k := range key {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// setKey sets key = value (a string) in table: it rewrites the key's line
// in the table's body (keeping its indentation and comment), or inserts
// the key after the table's header, or appends the table. Lines are
// matched by their parsed TOML key, so any quoting of the header matches.
func setKey(lines []string, table []string, key, value string) []string {
	header, end := -1, len(lines)
	for i, l := range lines {
		k, isTable := lineTable(l)
		if !isTable {
			continue
		}
		if header >= 0 {
			end = i
			break
		}
		if slices.Equal(k, table) {
			header = i
		}
	}
	kv := key + " = " + tomlString(value)
	if header < 0 {
		for len(lines) > 0 && lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		return append(lines, "", tableHeader(table), "  "+kv, "")
	}
	for i := header + 1; i < end; i++ {
		if k, ok := lineKey(lines[i]); ok && slices.Equal(k, []string{key}) {
			l := lines[i]
			indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
			nl := indent + kv
			if c := l[len(stripComment(l)):]; c != "" {
				nl += " " + c
			}
			lines[i] = nl
			return lines
		}
	}
	return slices.Insert(lines, header+1, "  "+kv)
}

// lineTable parses one line as a TOML table header ([a."b".c] or
// [[a.b]]): its key, and whether it is a header at all.
func lineTable(l string) ([]string, bool) {
	t := strings.TrimSpace(l)
	if !strings.HasPrefix(t, "[") {
		return nil, false
	}
	var p unstable.Parser
	p.Reset([]byte(t))
	if !p.NextExpression() {
		return nil, false
	}
	e := p.Expression()
	if e.Kind != unstable.Table && e.Kind != unstable.ArrayTable {
		return nil, false
	}
	var key []string
	for it := e.Key(); it.Next(); {
		key = append(key, string(it.Node().Data))
	}
	if e.Kind == unstable.ArrayTable {
		return nil, true // a boundary, never a table airlock edits
	}
	return key, true
}

// lineKey parses one line as a TOML key = value and returns its key.
func lineKey(l string) ([]string, bool) {
	var p unstable.Parser
	p.Reset([]byte(strings.TrimSpace(l)))
	if !p.NextExpression() {
		return nil, false
	}
	e := p.Expression()
	if e.Kind != unstable.KeyValue {
		return nil, false
	}
	var key []string
	for it := e.Key(); it.Next(); {
		key = append(key, string(it.Node().Data))
	}
	return key, true
}

// tableHeader renders a table header, quoting the parts that need it:
// [plugins."io.containerd.grpc.v1.cri".registry].
func tableHeader(key []string) string {
	parts := make([]string, len(key))
	for i, k := range key {
		if k != "" && strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == "" {
			parts[i] = k
		} else {
			parts[i] = tomlString(k)
		}
	}
	return "[" + strings.Join(parts, ".") + "]"
}

// tomlString renders s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// stripComment drops a trailing # comment outside quotes.
func stripComment(l string) string {
	inQuote := byte(0)
	for i := 0; i < len(l); i++ {
		switch c := l[i]; {
		case inQuote == '"' && c == '\\':
			i++ // an escaped character
		case inQuote != 0 && c == inQuote:
			inQuote = 0
		case inQuote == 0 && (c == '"' || c == '\''):
			inQuote = c
		case inQuote == 0 && c == '#':
			return l[:i]
		}
	}
	return l
}

// planContainerd adds containerd's files to the plan: its config
// (config_path, the sandbox image), a hosts.toml per cache rule host and
// the _default catch-all. It refuses a sandbox image no cache rule
// covers: with the catch-all containerd could not pull it at all.
func (n *Node) planContainerd(p *Plan, in Input, mirrors []Mirror) error {
	c := in.Config
	sandbox := c.SandboxImage
	if sandbox == "" {
		sandbox = DefaultSandboxImage
	}
	host, repo := splitImage(sandbox)
	if !slices.ContainsFunc(in.CacheRules, func(r CacheRule) bool { return r.covers(host, repo) }) {
		return fmt.Errorf("node.sandboxImage %s: no cache rule covers %s/%s, so containerd could not pull the pod sandbox image (airlock refuses registries without a rule, kubeadm#2020): add a cache rule (sourceRepo %s/*) or set node.sandboxImage to an image a rule covers", sandbox, host, repo, host)
	}
	cur, exists, err := readFile(n.under(c.ContainerdConfig))
	if err != nil {
		return fmt.Errorf("reading containerd config: %w", err)
	}
	binVersion, known := [3]int{}, false
	for _, r := range p.Runtimes {
		if r.Runtime == RuntimeContainerd && r.Version != "" {
			binVersion, known = containerdVersion(r.Version)
		}
	}
	newVersion := 2
	if known && binVersion[0] >= 2 {
		newVersion = 3
	}
	edit, err := editContainerdConfigVersion(cur, exists, sandbox, newVersion)
	if err != nil {
		return fmt.Errorf("%s: %w", c.ContainerdConfig, err)
	}
	if known && slices.Compare(binVersion[:], defaultHostsMin[:]) < 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("containerd %d.%d.%d does not read %s/_default (from 1.6.17): registries without a cache rule are pulled from the registries themselves, held only by the node's packet rules (outboundType block or userDefinedRouting); upgrade containerd", binVersion[0], binVersion[1], binVersion[2], edit.certsDir))
	}
	// Wanted even when unchanged: a config airlock wrote before stays
	// airlock's (reset restores it).
	p.files = append(p.files, wantFile{path: c.ContainerdConfig, role: "containerd config", content: edit.content})
	p.Notes = append(p.Notes, edit.notes...)
	p.CertsDir = edit.certsDir
	ep := MirrorEndpoint{Registries: c.Registry, TLS: in.RegistryTLS || c.RegistryCAFile != "", CAFile: c.RegistryCAFile}
	for _, m := range mirrors {
		if alt := hostDirAlias(m.Upstream); alt != "" {
			if _, err := os.Stat(n.under(path.Join(edit.certsDir, alt))); err == nil {
				return fmt.Errorf("%s exists: containerd reads it before %s/, so airlock's hosts file would not be used; move it away and run apply again", path.Join(edit.certsDir, alt), m.Upstream)
			}
		}
		p.files = append(p.files, wantFile{
			path:    path.Join(edit.certsDir, m.Upstream, "hosts.toml"),
			role:    "hosts.toml " + m.Upstream,
			content: HostsTOML(m, ep),
		})
	}
	p.files = append(p.files, wantFile{
		path:    path.Join(edit.certsDir, DefaultHostsDir, "hosts.toml"),
		role:    "hosts.toml " + DefaultHostsDir,
		content: DefaultHostsTOML(ep),
	})
	if others := n.foreignHostDirs(edit.certsDir, mirrors); len(others) > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("%s also has %s: containerd reads them, not _default, for those registries (no cache rule): they are reached only if the node's firewall lets them; airlock verify reports them", edit.certsDir, strings.Join(others, ", ")))
	}
	p.Mirrors = mirrors
	return nil
}

// hostDirAlias is the other directory name containerd looks up first for
// a host with a port ("host:5000" → "host_5000_"); "" without a port.
func hostDirAlias(host string) string {
	i := strings.LastIndex(host, ":")
	if i <= 0 || strings.HasSuffix(host, "]") {
		return ""
	}
	return host[:i] + "_" + host[i+1:] + "_"
}

// foreignHostDirs lists the directories in certsDir (under root) that are
// neither a cache rule host's nor _default: containerd uses them instead
// of _default for their registries.
func (n *Node) foreignHostDirs(certsDir string, mirrors []Mirror) []string {
	ents, err := os.ReadDir(n.under(certsDir))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || name == DefaultHostsDir || strings.HasPrefix(name, ".") ||
			slices.ContainsFunc(mirrors, func(m Mirror) bool { return m.Upstream == name }) {
			continue
		}
		out = append(out, name+"/")
	}
	return out
}
