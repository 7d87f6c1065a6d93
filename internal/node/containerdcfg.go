package node

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DefaultCertsDir is where airlock points containerd's registry
// config_path when it is not set (a path on the node).
const DefaultCertsDir = "/etc/containerd/certs.d"

var (
	versionLine    = regexp.MustCompile(`^\s*version\s*=\s*(\d+)\s*(#.*)?$`)
	configPathLine = regexp.MustCompile(`^\s*config_path\s*=\s*(".*"|'.*')\s*(#.*)?$`)
	tableLine      = regexp.MustCompile(`^\s*\[`)
)

// registrySection is the CRI registry table for a containerd config
// version: 2 (containerd 1.x) or 3 (containerd 2.x).
func registrySection(version int) string {
	if version >= 3 {
		return `[plugins."io.containerd.cri.v1.images".registry]`
	}
	return `[plugins."io.containerd.grpc.v1.cri".registry]`
}

// containerdEdit is the outcome of ensureConfigPath.
type containerdEdit struct {
	content  string // the config to write (== input when unchanged)
	changed  bool
	certsDir string // the certs.d directory containerd reads (path on the node)
	note     string // what the user should know, "" if nothing
}

// ensureConfigPath makes containerd's CRI registry read hosts files from
// a certs.d directory. A config without the key gets config_path =
// DefaultCertsDir; one that already names a directory keeps it (the hosts
// files go there). It edits the text line by line, so comments and the
// rest of the file are kept as they are. exists is false when there is no
// config file.
func ensureConfigPath(content string, exists bool) (containerdEdit, error) {
	version, meaningful := 0, false
	lines := strings.Split(content, "\n")
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") {
			meaningful = true
		}
		if m := versionLine.FindStringSubmatch(l); m != nil {
			version, _ = strconv.Atoi(m[1])
		}
	}
	want := fmt.Sprintf("  config_path = %q", DefaultCertsDir)
	if !exists || !meaningful {
		c := content
		if c != "" && !strings.HasSuffix(c, "\n") {
			c += "\n"
		}
		c += "version = 2\n\n" + registrySection(2) + "\n" + want + "\n"
		return containerdEdit{content: c, changed: true, certsDir: DefaultCertsDir,
			note: "wrote containerd's config (it had none): containerd must restart to read it"}, nil
	}
	if version < 2 {
		return containerdEdit{}, fmt.Errorf("containerd config has no `version = 2` (or 3) line: containerd would read it as version 1, whose registry keys airlock does not write; add the version line or set the CRI registry config_path yourself")
	}
	section := registrySection(version)
	header := -1
	for i, l := range lines {
		if strings.TrimSpace(stripComment(l)) == section {
			header = i
			break
		}
	}
	if header < 0 {
		c := content
		if !strings.HasSuffix(c, "\n") {
			c += "\n"
		}
		c += "\n" + section + "\n" + want + "\n"
		return containerdEdit{content: c, changed: true, certsDir: DefaultCertsDir,
			note: "set config_path in containerd's config: containerd must restart to read it"}, nil
	}
	for i := header + 1; i < len(lines) && !tableLine.MatchString(lines[i]); i++ {
		m := configPathLine.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		path := strings.Trim(m[1], `"'`)
		if path == "" {
			lines[i] = want
			return containerdEdit{content: strings.Join(lines, "\n"), changed: true, certsDir: DefaultCertsDir,
				note: "set config_path in containerd's config: containerd must restart to read it"}, nil
		}
		e := containerdEdit{content: content, certsDir: path}
		if path != DefaultCertsDir {
			e.note = fmt.Sprintf("containerd's config_path is already %s: airlock writes its hosts files there and leaves the setting alone", path)
		}
		return e, nil
	}
	lines = append(lines[:header+1], append([]string{want}, lines[header+1:]...)...)
	return containerdEdit{content: strings.Join(lines, "\n"), changed: true, certsDir: DefaultCertsDir,
		note: "set config_path in containerd's config: containerd must restart to read it"}, nil
}

// stripComment drops a trailing # comment outside quotes.
func stripComment(l string) string {
	inQuote := byte(0)
	for i := 0; i < len(l); i++ {
		switch c := l[i]; {
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
