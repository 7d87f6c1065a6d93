package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

const roleDaemonJSON = "dockerd daemon.json"

// dockerUnitFiles are where dockerd's command line is set (under the
// root): a flag there and the same key in daemon.json stop dockerd from
// starting ("specified both as a flag and in the configuration file").
var dockerUnitFiles = []string{
	"/etc/systemd/system/docker.service",
	"/lib/systemd/system/docker.service",
	"/usr/lib/systemd/system/docker.service",
	"/etc/default/docker",
	"/etc/sysconfig/docker",
}

// DockerMirrors are the registry-mirrors dockerd gets: every airlock
// replica's root URL. dockerd accepts no path in a mirror URL (moby's
// ValidateMirror) and asks a mirror for docker.io only (moby#18818).
func DockerMirrors(e MirrorEndpoint) []string {
	out := make([]string, 0, len(e.Registries))
	for _, r := range e.Registries {
		out = append(out, e.URL(Mirror{}, r))
	}
	return out
}

// MergeDaemonJSON sets registry-mirrors to mirrors and adds insecure to
// insecure-registries in dockerd's daemon.json, keeping every other key
// (written back sorted, two-space indented). cur is the file's content
// ("" or whitespace: none). It refuses what dockerd would refuse: a file
// that is not one JSON object, or those two keys holding anything but
// lists of strings. The notes name the mirrors it replaced.
func MergeDaemonJSON(cur string, mirrors, insecure []string) (string, []string, error) {
	doc := map[string]json.RawMessage{}
	if strings.TrimSpace(cur) != "" {
		dec := json.NewDecoder(strings.NewReader(cur))
		if err := dec.Decode(&doc); err != nil {
			return "", nil, fmt.Errorf("is not a JSON object (dockerd would not start with it either): %w", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return "", nil, fmt.Errorf("holds more than one JSON value (dockerd would not start with it either)")
		}
		if doc == nil {
			return "", nil, fmt.Errorf("is null, not a JSON object")
		}
	}
	list := func(key string) ([]string, error) {
		raw, ok := doc[key]
		if !ok {
			return nil, nil
		}
		var v []string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("%q must be a list of strings: %w", key, err)
		}
		return v, nil
	}
	oldMirrors, err := list("registry-mirrors")
	if err != nil {
		return "", nil, err
	}
	oldInsecure, err := list("insecure-registries")
	if err != nil {
		return "", nil, err
	}
	var notes []string
	var dropped []string
	for _, m := range oldMirrors {
		if !slices.Contains(mirrors, strings.TrimSuffix(m, "/")) {
			dropped = append(dropped, m)
		}
	}
	if len(dropped) > 0 {
		notes = append(notes, fmt.Sprintf("daemon.json registry-mirrors named %s: replaced by airlock's (a mirror that is not airlock is a way out; reset puts it back)", strings.Join(dropped, ", ")))
	}
	set := func(key string, v []string) {
		b, _ := json.Marshal(v)
		doc[key] = b
	}
	set("registry-mirrors", mirrors)
	if len(insecure) > 0 {
		all := slices.Clone(oldInsecure)
		for _, r := range insecure {
			if !slices.Contains(all, r) {
				all = append(all, r)
			}
		}
		set("insecure-registries", all)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", nil, err
	}
	var out bytes.Buffer
	out.Write(b)
	out.WriteByte('\n')
	return out.String(), notes, nil
}

// planDocker adds dockerd's daemon.json.
func (n *Node) planDocker(p *Plan, in Input, ep MirrorEndpoint) error {
	c := in.Config
	for _, f := range dockerUnitFiles {
		b, _, _ := readFile(n.under(f))
		if flag := dockerFlag(b); flag != "" {
			return fmt.Errorf("%s starts dockerd with %s: with registry-mirrors in daemon.json dockerd refuses to start (a key set both as a flag and in the file); remove the flag", f, flag)
		}
	}
	if ds, _ := filepath.Glob(n.under("/etc/systemd/system/docker.service.d/*.conf")); len(ds) > 0 {
		for _, d := range ds {
			b, _ := os.ReadFile(d)
			if flag := dockerFlag(string(b)); flag != "" {
				return fmt.Errorf("%s starts dockerd with %s: with registry-mirrors in daemon.json dockerd refuses to start (a key set both as a flag and in the file); remove the flag", n.onNode([]string{d})[0], flag)
			}
		}
	}
	cur, _, err := readFile(n.under(c.DockerDaemonConfig))
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.DockerDaemonConfig, err)
	}
	var insecure []string
	if !ep.TLS {
		insecure = ep.Registries
	}
	text, notes, err := MergeDaemonJSON(cur, DockerMirrors(ep), insecure)
	if err != nil {
		return fmt.Errorf("%s %w; fix it or set node.runtimes without docker", c.DockerDaemonConfig, err)
	}
	p.Notes = append(p.Notes, notes...)
	p.Notes = append(p.Notes, dockerRuleNote(in.CacheRules))
	p.files = append(p.files, wantFile{path: c.DockerDaemonConfig, role: roleDaemonJSON, content: text})
	return n.planRegistryCA(p, ep, "/etc/docker/certs.d", roleDockerCA)
}

// dockerRuleNote says how docker.io pulls fare on the airlock registry:
// dockerd asks a mirror for the bare name (library/alpine), no prefix and
// no ?ns=, so only a rule docker.io/* → * serves it.
func dockerRuleNote(rules []CacheRule) string {
	var dh []CacheRule
	for _, r := range rules {
		if strings.HasPrefix(r.SourceRepo, "docker.io/") {
			dh = append(dh, r)
		}
	}
	const tail = " Docker pulls every other registry directly (its mirrors serve docker.io only) and falls back to registry-1.docker.io when the mirror fails: only the node's packet rules hold those"
	switch {
	case len(dh) == 0:
		return "docker.io has no cache rule: airlock refuses every docker.io pull dockerd sends it." + tail
	case len(dh) == 1 && dh[0].SourceRepo == "docker.io/*" && dh[0].TargetRepo == "*":
		return "dockerd pulls docker.io through airlock (cache rule docker.io/* → *)." + tail
	}
	return fmt.Sprintf("dockerd asks its mirror for docker.io names as they are (library/alpine, no prefix): cache rule %s → %s does not serve them, only docker.io/* → * does; those pulls fail at airlock.", dh[0].SourceRepo, dh[0].TargetRepo) + tail
}

// dockerFlag returns the first dockerd flag in a unit or defaults file
// that daemon.json's registry keys conflict with, "" if none.
func dockerFlag(text string) string {
	for _, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "#") || strings.HasPrefix(t, ";") {
			continue
		}
		for _, f := range []string{"--registry-mirror", "--insecure-registry"} {
			if strings.Contains(t, f) {
				return f
			}
		}
	}
	return ""
}
