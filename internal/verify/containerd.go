package verify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// DefaultContainerdConfig is where containerd's config is read when
// Options.ContainerdConfig is empty (a path on the node).
const DefaultContainerdConfig = "/etc/containerd/config.toml"

// defaultHostsMin is the first containerd 1.6 release that reads
// certs.d/_default (containerd#8065, in 1.6.17; 1.7.0 and 2.x have it).
var defaultHostsMin = [3]int{1, 6, 17}

// containerdFound reports whether containerd is on the node under root:
// its config file or its binary in a bin directory.
func containerdFound(root, config string) (string, bool) {
	if _, err := os.Stat(filepath.Join(root, config)); err == nil {
		return config, true
	}
	for _, d := range []string{"/usr/bin", "/usr/local/bin", "/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(d, "containerd")
		if fi, err := os.Stat(filepath.Join(root, p)); err == nil && fi.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}

// containerdVersion is the version of the containerd binary: opt's when
// set, else `containerd --version` when the root is "/" (a binary under
// another root may not run here), else "".
func containerdVersion(root, given string) string {
	if given != "" || root != "/" {
		return given
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

var semver = regexp.MustCompile(`(?:^|[ v])(\d+)\.(\d+)\.(\d+)`)

// readsDefaultHosts reports whether containerd of version v (its
// --version line) reads certs.d/_default; known is false when v names no
// version.
func readsDefaultHosts(v string) (reads, known bool) {
	m := semver.FindStringSubmatch(v)
	if m == nil {
		return false, false
	}
	var got [3]int
	for i := range got {
		got[i], _ = strconv.Atoi(m[i+1])
	}
	return slices.Compare(got[:], defaultHostsMin[:]) >= 0, true
}

// containerdCfg is what verify reads of containerd's config.
type containerdCfg struct {
	version    int
	configPath string // the CRI registry config_path as written
	sandbox    string // the pinned sandbox image
	mirrors    []string
	tlsConfigs []string
	section    string // the CRI registry table, for messages
}

func readContainerdCfg(b []byte) (containerdCfg, error) {
	var doc map[string]any
	if err := toml.Unmarshal(b, &doc); err != nil {
		return containerdCfg{}, err
	}
	c := containerdCfg{}
	if v, ok := doc["version"].(int64); ok {
		c.version = int(v)
	}
	var reg, sandbox []string
	switch c.version {
	case 2:
		reg = []string{"plugins", "io.containerd.grpc.v1.cri", "registry"}
		sandbox = []string{"plugins", "io.containerd.grpc.v1.cri", "sandbox_image"}
	case 3:
		reg = []string{"plugins", "io.containerd.cri.v1.images", "registry"}
		sandbox = []string{"plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"}
	default:
		return c, fmt.Errorf("version %d: containerd reads the CRI registry settings airlock writes from version 2 (containerd 1.x) or 3 (2.x) only", c.version)
	}
	c.section = `plugins."` + reg[1] + `".registry`
	c.configPath, _ = lookupTOML(doc, append(reg, "config_path")).(string)
	c.sandbox, _ = lookupTOML(doc, sandbox).(string)
	if m, _ := lookupTOML(doc, append(reg, "mirrors")).(map[string]any); len(m) > 0 {
		for k := range m {
			c.mirrors = append(c.mirrors, k)
		}
		slices.Sort(c.mirrors)
	}
	if m, _ := lookupTOML(doc, append(reg, "configs")).(map[string]any); len(m) > 0 {
		for k, v := range m {
			if t, _ := v.(map[string]any); t != nil && t["tls"] != nil {
				c.tlsConfigs = append(c.tlsConfigs, k)
			}
		}
		slices.Sort(c.tlsConfigs)
	}
	return c, nil
}

func lookupTOML(doc map[string]any, key []string) any {
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

// containerdProbes are the containerd rows, when containerd is on the
// node: its config pins the pull path (containerd-config), every
// registry without a cache rule goes to airlock (containerd-default), and
// the sandbox image is pinned and pulled through airlock
// (containerd-sandbox). They read files only.
func (b *battery) containerdProbes() []probe {
	cfgPath := b.containerdConfig
	if cfgPath == "" {
		cfgPath = DefaultContainerdConfig
	}
	if _, ok := containerdFound(b.root, cfgPath); !ok {
		return nil
	}
	file := filepath.Join(b.root, cfgPath)
	var cfg containerdCfg
	var cfgErr error
	if raw, err := os.ReadFile(file); err != nil {
		cfgErr = fmt.Errorf("reading %s: %w (without config_path containerd reads no hosts file and pulls from each registry itself)", file, err)
	} else if cfg, cfgErr = readContainerdCfg(raw); cfgErr != nil {
		cfgErr = fmt.Errorf("%s: %w", file, cfgErr)
	}
	certs := ""
	if cfgErr == nil {
		if dirs := filepath.SplitList(cfg.configPath); len(dirs) == 1 {
			certs = filepath.Join(b.root, dirs[0])
		}
	}
	row := func(channel string, f func() (Outcome, string)) probe {
		return probe{channel: channel, target: cfgPath, expected: Reachable,
			run: func(context.Context) (Outcome, string) {
				if cfgErr != nil {
					return Failed, cfgErr.Error()
				}
				return f()
			}}
	}
	return []probe{
		row("containerd-config", func() (Outcome, string) { return b.containerdConfigCheck(file, cfg) }),
		row("containerd-default", func() (Outcome, string) { return b.containerdDefault(certs) }),
		row("containerd-sandbox", func() (Outcome, string) { return b.containerdSandbox(certs, cfg) }),
	}
}

func (b *battery) containerdConfigCheck(file string, cfg containerdCfg) (Outcome, string) {
	var bad []string
	dirs := filepath.SplitList(cfg.configPath)
	switch {
	case cfg.configPath == "":
		bad = append(bad, fmt.Sprintf("[%s] config_path is not set: containerd reads no hosts file and pulls from each registry itself (containerd 2 defaults to a directory list it does not read, containerd#12636)", cfg.section))
	case len(dirs) > 1:
		bad = append(bad, fmt.Sprintf("[%s] config_path %q lists several directories: containerd 2's transfer service reads it as one directory and finds no hosts file (containerd#12636)", cfg.section, cfg.configPath))
	}
	if len(cfg.mirrors) > 0 {
		bad = append(bad, fmt.Sprintf("[%s.mirrors] sets %s: beside config_path containerd does not load its CRI plugin (containerd#12612)", cfg.section, strings.Join(cfg.mirrors, ", ")))
	}
	if len(cfg.tlsConfigs) > 0 {
		bad = append(bad, fmt.Sprintf("[%s.configs.<host>.tls] sets %s: beside config_path containerd 1.x does not load its CRI plugin", cfg.section, strings.Join(cfg.tlsConfigs, ", ")))
	}
	if len(bad) > 0 {
		return Failed, file + ": " + strings.Join(bad, "; ")
	}
	return Reachable, fmt.Sprintf("%s: version %d, config_path %s, no registry.mirrors", file, cfg.version, cfg.configPath)
}

// containerdDefault checks the catch-all: _default/hosts.toml exists and
// names only the airlock registry, containerd reads it, and no other host
// directory sends a registry elsewhere.
func (b *battery) containerdDefault(certs string) (Outcome, string) {
	if certs == "" {
		return Failed, "no single config_path directory (see containerd-config)"
	}
	var bad []string
	file := filepath.Join(certs, "_default", "hosts.toml")
	if raw, err := os.ReadFile(file); err != nil {
		bad = append(bad, fmt.Sprintf("no %s: containerd pulls every registry without a cache rule from the registry itself (a fallback), unless the node's firewall stops it", file))
	} else if hf, err := parseHostsTOML(raw); err != nil {
		bad = append(bad, fmt.Sprintf("%s: %v", file, err))
	} else if why := b.notAirlock(hf); why != "" {
		bad = append(bad, fmt.Sprintf("%s: %s", file, why))
	}
	if v := containerdVersion(b.root, b.containerdVersion); v != "" {
		if reads, known := readsDefaultHosts(v); known && !reads {
			bad = append(bad, fmt.Sprintf("containerd %q does not read _default (from 1.6.17, containerd#8065): registries without a cache rule are pulled directly, stopped only by the node's nftables (outboundType block or userDefinedRouting)", v))
		}
	}
	ents, _ := os.ReadDir(certs)
	for _, e := range ents {
		if !e.IsDir() || e.Name() == "_default" {
			continue
		}
		f := filepath.Join(certs, e.Name(), "hosts.toml")
		raw, err := os.ReadFile(f)
		if err != nil {
			// A directory without hosts.toml: containerd uses it (certificate
			// files only) instead of _default, and pulls from the registry.
			bad = append(bad, fmt.Sprintf("%s has no hosts.toml: containerd uses it instead of _default and pulls %s from the registry itself", filepath.Dir(f), e.Name()))
			continue
		}
		hf, err := parseHostsTOML(raw)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		if why := b.notAirlock(hf); why != "" {
			bad = append(bad, fmt.Sprintf("%s: %s", f, why))
		}
	}
	if len(bad) > 0 {
		return Failed, strings.Join(bad, "; ")
	}
	return Reachable, fmt.Sprintf("%s and every host directory name only the airlock registry", file)
}

// containerdSandbox checks that the sandbox image is pinned (to
// b.sandboxImage when set) and that its registry's own hosts.toml names
// the airlock registry (through _default airlock would refuse it).
func (b *battery) containerdSandbox(certs string, cfg containerdCfg) (Outcome, string) {
	key := "sandbox_image"
	if cfg.version == 3 {
		key = "pinned_images.sandbox"
	}
	switch {
	case cfg.sandbox == "":
		return Failed, fmt.Sprintf("%s is not set: containerd pulls its built-in pause image, from registry.k8s.io unless a cache rule covers it (kubeadm#2020)", key)
	case b.sandboxImage != "" && cfg.sandbox != b.sandboxImage:
		return Failed, fmt.Sprintf("%s is %s, node.sandboxImage is %s", key, cfg.sandbox, b.sandboxImage)
	case certs == "":
		return Failed, "no single config_path directory (see containerd-config)"
	}
	ref, err := parseImageRef(cfg.sandbox)
	if err != nil {
		return Failed, fmt.Sprintf("%s %q: %v", key, cfg.sandbox, err)
	}
	file := filepath.Join(certs, ref.Host, "hosts.toml")
	raw, err := os.ReadFile(file)
	if err != nil {
		return Failed, fmt.Sprintf("%s %s: no %s (no cache rule for %s): the catch-all sends it to airlock, which refuses it, so pods cannot start", key, cfg.sandbox, file, ref.Host)
	}
	hf, err := parseHostsTOML(raw)
	if err != nil {
		return Failed, fmt.Sprintf("%s: %v", file, err)
	}
	if why := b.notAirlock(hf); why != "" {
		return Failed, fmt.Sprintf("%s: %s", file, why)
	}
	return Reachable, fmt.Sprintf("%s %s, pulled through %s", key, cfg.sandbox, file)
}

// notAirlock says why a hosts file sends pulls somewhere other than the
// airlock registry, "" when its server and every host entry are one of
// b.registries (without node.registry: are all the same address, set).
func (b *battery) notAirlock(hf hostsFile) string {
	if hf.Server.URL == "" {
		return "no server: containerd falls back to the registry itself (https://<registry>) after the host entries"
	}
	var other []string
	first := ""
	for _, h := range append([]hostEntry{hf.Server}, hf.Hosts...) {
		u, err := mirrorBase(h)
		if err != nil {
			return err.Error()
		}
		switch {
		case len(b.registries) > 0 && !slices.ContainsFunc(b.registries, func(r string) bool { return sameHostPort(r, u.Host) }):
			other = append(other, h.URL)
		case len(b.registries) == 0 && first != "" && u.Host != first:
			other = append(other, h.URL)
		}
		if first == "" {
			first = u.Host
		}
	}
	if len(other) > 0 {
		return "names " + strings.Join(slices.Compact(other), ", ") + ", not the airlock registry (node.registry " + strings.Join(b.registries, ", ") + ")"
	}
	return ""
}

// sameHostPort compares two host:port strings, IPv6 brackets and all.
func sameHostPort(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err := errors.Join(err1, err2); err != nil {
		return a == b
	}
	return strings.EqualFold(ah, bh) && ap == bp
}
