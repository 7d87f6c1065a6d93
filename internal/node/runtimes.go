package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RuntimeInfo is one container runtime as apply sees it: found on the
// node, listed in node.runtimes, or both.
type RuntimeInfo struct {
	Runtime Runtime `json:"runtime"`
	// Found is true when detection found it under the root; Evidence is
	// what it found (a binary or a configuration directory).
	Found    bool   `json:"found"`
	Evidence string `json:"evidence,omitempty"`
	// Listed is true when node.runtimes names it.
	Listed bool `json:"listed"`
	// Version is the first line of `<binary> --version`, only read when
	// the root is "/" (a binary under another root may not run here).
	Version string `json:"version,omitempty"`
	// ConfigVersion is containerd's config.toml `version` line (2 for
	// containerd 1.x, 3 for 2.x); 0 when there is no file or no line.
	ConfigVersion int `json:"configVersion,omitempty"`
	// Restart says what makes the runtime read what apply wrote.
	Restart string `json:"restart,omitempty"`
}

// pinned is true when apply configures this runtime: listed in
// node.runtimes, or, when that list is empty, found.
func (r RuntimeInfo) pinned(listSet bool) bool { return r.Listed || (!listSet && r.Found) }

// String is the line `node apply` prints for the runtime.
func (r RuntimeInfo) String() string {
	s := string(r.Runtime)
	switch {
	case r.Found && r.Listed:
		s += " (listed in node.runtimes, found " + r.Evidence + ")"
	case r.Found:
		s += " (found " + r.Evidence + ")"
	case r.Listed:
		s += " (listed in node.runtimes, not found on this node: configured anyway)"
	}
	if r.Version != "" {
		s += ", " + r.Version
	}
	if r.ConfigVersion != 0 {
		s += fmt.Sprintf(", config version %d", r.ConfigVersion)
	}
	return s
}

// binDirs are where detection looks for runtime binaries under the root.
var binDirs = []string{"/usr/bin", "/usr/local/bin", "/usr/sbin", "/usr/local/sbin"}

// runtimeProbe is what detection looks for: binaries, then directories
// or files that only that runtime's packages install.
var runtimeProbe = map[Runtime]struct {
	bins, paths []string
}{
	RuntimeContainerd: {bins: []string{"containerd"}},
	RuntimeCRIO:       {bins: []string{"crio"}, paths: []string{"/etc/crio"}},
	RuntimePodman:     {bins: []string{"podman"}},
	// Not /etc/docker alone: other tools (and a pod's hostPath mount)
	// create it on nodes without dockerd.
	RuntimeDocker: {bins: []string{"dockerd"}, paths: []string{"/etc/docker/daemon.json"}},
}

// versionOf runs `bin --version` and returns its first line; tests
// replace it.
var versionOf = func(bin string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// detectRuntimes finds the container runtimes under the root and merges
// node.runtimes in, in the order of Runtimes. A non-empty node.runtimes
// is the whole list: a runtime found but not listed is not configured,
// and a note says so (verify still checks it). With nothing found and
// nothing listed it returns containerd alone, unfound and unlisted: what
// apply pinned before it detected runtimes (node.runtimes names them on
// an image being built).
func (n *Node) detectRuntimes(c Config) ([]RuntimeInfo, []string) {
	// A file airlock created (a containerd config on a node that had
	// none) is no evidence: apply would otherwise see another node the
	// second time.
	created := map[string]bool{}
	if st, err := n.loadState(); err == nil && st != nil {
		for _, f := range st.Files {
			if f.Created {
				created[f.Path] = true
			}
		}
		for _, d := range st.CreatedDirs {
			created[d] = true
		}
	}
	var out []RuntimeInfo
	var notes []string
	for _, rt := range Runtimes {
		info := RuntimeInfo{Runtime: rt, Listed: slices.Contains(c.Runtimes, rt)}
		probe := runtimeProbe[rt]
		bin := ""
		for _, b := range probe.bins {
			for _, d := range binDirs {
				p := filepath.Join(d, b)
				if fi, err := os.Stat(n.under(p)); err == nil && fi.Mode().IsRegular() {
					bin, info.Found, info.Evidence = p, true, p
					break
				}
			}
			if bin == "" && n.root == "/" {
				if p, err := exec.LookPath(b); err == nil {
					bin, info.Found, info.Evidence = p, true, p
				}
			}
		}
		if rt == RuntimeContainerd && !created[c.ContainerdConfig] {
			if cur, exists, _ := readFile(n.under(c.ContainerdConfig)); exists {
				info.ConfigVersion = configVersion(cur)
				if !info.Found {
					info.Found, info.Evidence = true, c.ContainerdConfig
				}
			}
		}
		for _, p := range probe.paths {
			if info.Found {
				break
			}
			if _, err := os.Stat(n.under(p)); err == nil && !created[p] {
				info.Found, info.Evidence = true, p
			}
		}
		if bin != "" && n.root == "/" {
			info.Version = versionOf(bin)
		}
		info.Restart = restartText[rt]
		switch {
		case info.pinned(len(c.Runtimes) > 0):
			out = append(out, info)
		case info.Found:
			notes = append(notes, fmt.Sprintf("%s found (%s) but not in node.runtimes: not pinned to airlock; add it to node.runtimes, or remove it from the node", rt, info.Evidence))
		}
	}
	if len(out) == 0 {
		out = []RuntimeInfo{{Runtime: RuntimeContainerd, Restart: restartText[RuntimeContainerd]}}
	}
	return out, notes
}

// restartText says how each runtime reads what apply wrote.
var restartText = map[Runtime]string{
	RuntimeContainerd: "containerd reads its certs.d host files on every pull; a changed config.toml needs systemctl restart containerd",
	RuntimeCRIO:       "systemctl reload crio (SIGHUP re-reads registries.conf and pause_image; a restart does too)",
	RuntimePodman:     "none: every podman command reads registries.conf when it starts",
	RuntimeDocker:     "systemctl reload docker (SIGHUP reloads registry-mirrors and insecure-registries; a restart does too)",
}

var (
	versionKeyLine = regexp.MustCompile(`^\s*version\s*=\s*(\d+)\s*(#.*)?$`)
	tableStartLine = regexp.MustCompile(`^\s*\[`)
)

// configVersion is the value of a containerd config's top-level version
// line, 0 without one.
func configVersion(content string) int {
	for _, l := range strings.Split(content, "\n") {
		if tableStartLine.MatchString(l) {
			break
		}
		if m := versionKeyLine.FindStringSubmatch(l); m != nil {
			v, _ := strconv.Atoi(m[1])
			return v
		}
	}
	return 0
}

// pins reports whether the plan configures runtime rt.
func (p *Plan) pins(rt Runtime) bool {
	for _, r := range p.Runtimes {
		if r.Runtime == rt {
			return true
		}
	}
	return false
}

// planRuntimes adds the files of CRI-O, podman and Docker (artifactSource
// Cache), after containerd's.
func (n *Node) planRuntimes(p *Plan, in Input) error {
	c := in.Config
	crio, podman, docker := p.pins(RuntimeCRIO), p.pins(RuntimePodman), p.pins(RuntimeDocker)
	if !crio && !podman && !docker {
		return nil
	}
	if len(c.Registry) == 0 {
		return fmt.Errorf("node.registry is empty: artifactSource Cache pins upstreams to the airlock registry; set node.registry")
	}
	ep := MirrorEndpoint{Registries: c.Registry, TLS: in.RegistryTLS || c.RegistryCAFile != "", CAFile: c.RegistryCAFile}
	if crio || podman {
		if err := n.planRegistriesConf(p, in, ep, crio); err != nil {
			return err
		}
	}
	if docker {
		if err := n.planDocker(p, in, ep); err != nil {
			return err
		}
	}
	return nil
}

// runtimeFiles says which runtimes read a file apply writes (by role).
func runtimeFiles(role string) []Runtime {
	switch {
	case strings.Contains(role, "containerd"), strings.HasPrefix(role, "hosts.toml"):
		return []Runtime{RuntimeContainerd}
	case role == roleRegistriesConf, strings.HasPrefix(role, roleContainersCA):
		return []Runtime{RuntimeCRIO, RuntimePodman}
	case strings.HasPrefix(role, roleDockerCA):
		return []Runtime{RuntimeDocker}
	case role == roleCRIOPause:
		return []Runtime{RuntimeCRIO}
	case role == roleDaemonJSON:
		return []Runtime{RuntimeDocker}
	}
	return nil
}
