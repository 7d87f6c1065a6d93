//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// The parts of a rendered manifest this test reads (yaml.v3 ignores the
// rest).
type k8sDoc struct {
	Kind     string
	Metadata struct {
		Name        string
		Labels      map[string]string
		Annotations map[string]string
	}
	Data map[string]string
	Spec struct {
		Template struct {
			Spec k8sPodSpec
		}
	}
}

type k8sPodSpec struct {
	HostNetwork    bool           `yaml:"hostNetwork"`
	InitContainers []k8sContainer `yaml:"initContainers"`
	Containers     []k8sContainer
	Volumes        []k8sVolume
}

type k8sContainer struct {
	Name    string
	Command []string
	Args    []string
	Env     []struct {
		Name      string
		Value     string
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	}
	VolumeMounts []struct {
		Name      string
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type k8sVolume struct {
	Name     string
	HostPath *struct {
		Path string
		Type string
	} `yaml:"hostPath"`
	ConfigMap *struct {
		Name string
	} `yaml:"configMap"`
}

// TestChartUninstallHookResetsNodeE2E runs what the chart renders, as its
// pods would run it, on one node played by a network namespace and a
// temporary directory standing in for the host's /: the node agent
// DaemonSet's container (its args as rendered, with the node ConfigMap's
// airlock.yaml) until the node is applied, SIGTERM, then the post-delete
// hook's `node reset` init container (args as rendered, with the hook
// ConfigMap's airlock.yaml). Reset must exit 0, delete the nft table,
// remove what apply created and restore what it changed byte for byte.
//
// Pod paths are mapped the way the pod's mounts map them, and only those:
// a hostPath mount's mountPath prefix becomes <temp root><hostPath>, a
// configMap mount's becomes a directory holding that ConfigMap's data;
// node.root (/host, the parent of the /host/... mounts, each of which is
// the same host path) becomes the temp root; $(HOST_IP) becomes the
// namespace's address. node.toolsRoot (/host-root, the host's / read-only,
// for the host's nft and ip run chrooted) is set to "/": the test runs
// nft and ip of this machine (the real /; the temp root has no binaries).
// The processes run in the test's network namespace (hostNetwork) through
// `ip netns exec`, on this machine's files, each in a mount namespace of
// its own where every mapped mount is bound onto itself (read-only where
// the pod's is), so that mount points behave as in the pod: kubelet's
// DirectoryOrCreate directories cannot be removed, the File-mounted
// /etc/resolv.conf cannot be replaced by a rename. The node is therefore
// a systemd-resolved one (resolv.conf names the stub), the form the
// chart's README supports; apply leaves resolv.conf alone there and the
// test still compares it byte for byte.
func TestChartUninstallHookResetsNodeE2E(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and nftables")
	}
	for _, b := range []string{"nft", "ip", "unshare", "mount"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (scripts/deps.sh installs nftables, iproute2; util-linux has unshare and mount)", b)
		}
	}
	helm := helmTool(t)
	bin := needAirlock(t)

	// 1. Render the chart (hooks included) for an example that isolates
	// the node: outboundType block, artifactSource Cache, node.dns.
	const example = "s3-redis"
	chart := filepath.Join("..", "..", "deploy", "helm", "airlock")
	docs := helmTemplate(t, helm, chart, filepath.Join(chart, "examples", example+".yaml"))
	agentDS := findDaemonSet(t, docs, "node", "")
	hookDS := findDaemonSet(t, docs, "node-reset", "post-delete")
	agent := findContainer(t, agentDS.Spec.Template.Spec.Containers, "agent")
	reset := findContainer(t, hookDS.Spec.Template.Spec.InitContainers, "reset")
	if !agentDS.Spec.Template.Spec.HostNetwork || !hookDS.Spec.Template.Spec.HostNetwork {
		t.Fatalf("hostNetwork: agent %v, hook %v; the test plays the node's network namespace for both", agentDS.Spec.Template.Spec.HostNetwork, hookDS.Spec.Template.Spec.HostNetwork)
	}
	t.Logf("helm template rel %s -f examples/%s.yaml: agent DaemonSet %s container %s args %q; hook DaemonSet %s (helm.sh/hook %s) init container %s args %q",
		chart, example, agentDS.Metadata.Name, agent.Name, agent.Args, hookDS.Metadata.Name, hookDS.Metadata.Annotations["helm.sh/hook"], reset.Name, reset.Args)

	// 2. The node: a namespace with loopback and a veth pair with both
	// ends inside it, eth0 carrying the node address (nothing leaves the
	// namespace), and a temp root.
	var rb [3]byte
	rand.Read(rb[:])
	ns := "alch-" + hex.EncodeToString(rb[:])
	const hostIP = "198.18.71.2"
	netnstest.Add(t, ns)
	netnstest.Exec(t, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	netnstest.Exec(t, "ip", "-n", ns, "addr", "add", hostIP+"/24", "dev", "eth0")
	netnstest.Exec(t, "ip", "-n", ns, "link", "set", "eth0", "up")

	dir := t.TempDir()
	root := filepath.Join(dir, "host")
	// What the node had before airlock: containerd's config without
	// config_path, and systemd-resolved's resolv.conf (the stub), as the
	// pod sees it through its File mount. A resolv.conf of the node's own
	// would make resolver auto rewrite it, which a pod cannot do (a
	// bind-mounted file is not replaced by a rename: the chart's README).
	const containerdConfig = "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"mcr.microsoft.com/oss/kubernetes/pause:3.6\"\n"
	const resolvConf = "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.internal\n"
	writeFileDirs(t, filepath.Join(root, "etc/containerd/config.toml"), containerdConfig)
	writeFileDirs(t, filepath.Join(root, "etc/resolv.conf"), resolvConf)
	writeFileDirs(t, filepath.Join(root, "run/systemd/resolve/stub-resolv.conf"), resolvConf)

	agentPod := newPodFS(t, "agent", agentDS.Spec.Template.Spec, agent, docs, root, dir)
	hookPod := newPodFS(t, "hook", hookDS.Spec.Template.Spec, reset, docs, root, dir)
	before := tree(t, root)

	// 3. The agent, as the DaemonSet runs it, until the node is applied.
	agentArgs := agentPod.args(t, agent, map[string]string{"status.hostIP": hostIP})
	t.Logf("agent: %s %s", bin, strings.Join(agentArgs, " "))
	agentLog := filepath.Join(dir, "agent.log")
	p := startProcess(t, "node agent", agentLog, "ip", append([]string{"netns", "exec", ns}, agentPod.command(bin, agentArgs)...)...)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			p.stop(15 * time.Second)
		}
	})
	listen := ""
	for i, a := range agentArgs {
		if a == "--listen" && i+1 < len(agentArgs) {
			listen = agentArgs[i+1]
		}
	}
	if listen == "" {
		t.Fatalf("agent args %q: no --listen", agentArgs)
	}
	hosts := filepath.Join(root, "etc/containerd/certs.d/mcr.microsoft.com/hosts.toml")
	applied := func() bool {
		code, _ := httpIn(ns, listen, "/readyz")
		_, err := os.Stat(hosts)
		return code == 200 && err == nil && nftTable(t, ns) != ""
	}
	if err := waitFor(p, 2*time.Minute, applied); err != nil {
		t.Fatalf("node agent: %v\n%s", err, p.logTail(40))
	}
	wantTable := nftTable(t, ns)
	t.Logf("agent applied: /readyz 200 on %s, table inet airlock_node (%d lines), %s written",
		listen, strings.Count(wantTable, "\n"), strings.TrimPrefix(hosts, root))

	stopped = true
	if killed, err := p.stop(15 * time.Second); killed || err != nil {
		t.Fatalf("node agent stop (SIGTERM): killed=%v err=%v\n%s", killed, err, p.logTail(40))
	}
	if nftTable(t, ns) != wantTable {
		t.Fatal("the table changed when the agent stopped: isolation must stay until the hook's reset")
	}
	afterApply := tree(t, root)
	created, changed := diffTrees(before, afterApply)
	t.Logf("SIGTERM: exit 0, table left; apply created %d paths, changed %v", len(created), changed)
	if !slices.Contains(changed, "etc/containerd/config.toml") {
		t.Errorf("apply did not change etc/containerd/config.toml: the byte-for-byte restore below would prove nothing for it")
	}
	for _, want := range []string{"etc/containerd/certs.d/mcr.microsoft.com/hosts.toml", "etc/systemd/resolved.conf.d/airlock.conf"} {
		if !slices.Contains(created, want) {
			t.Errorf("apply created %v, want %s among them", created, want)
		}
	}
	// In a pod, a write outside the writable hostPath mounts would land in
	// the container's own (read-only) file system, not on the node.
	for _, rel := range append(append([]string{}, created...), changed...) {
		if !agentPod.writable(rel) {
			t.Errorf("apply wrote /%s, which no writable hostPath mount of the agent pod covers", rel)
		}
	}

	// 4. The uninstall hook's init container, args as rendered.
	resetArgs := hookPod.args(t, reset, nil)
	t.Logf("hook: %s %s", bin, strings.Join(resetArgs, " "))
	out, code := runIn(ns, 2*time.Minute, hookPod.command(bin, resetArgs)...)
	t.Logf("node reset → exit %d\n%s", code, strings.TrimSpace(out))
	if code != 0 {
		t.Fatalf("the hook's node reset: exit %d", code)
	}
	if got := nftTable(t, ns); got != "" {
		t.Errorf("table inet airlock_node after the hook:\n%s", got)
	}
	after := tree(t, root)
	left, differ := diffTrees(before, after)
	for _, k := range differ {
		if _, ok := after[k]; !ok {
			t.Errorf("after the hook: %s is missing (it was there before apply)", k)
		} else {
			t.Errorf("after the hook: %s = %q, want %q", k, after[k], before[k])
		}
	}
	for _, k := range left {
		t.Errorf("after the hook: %s is still there (apply created it)", k)
	}
	if !t.Failed() {
		t.Logf("after the hook: table gone, %d created paths removed, %v restored byte for byte (%d paths as before)", len(created), changed, len(before))
	}
}

// helmTool is helm from $AIRLOCK_TOOLS/bin (default /opt/airlock-tools,
// scripts/tools.sh), else from PATH; missing: skip, or fail under
// AIRLOCK_REQUIRE_TOOLS=1.
func helmTool(t *testing.T) string {
	t.Helper()
	tools := os.Getenv("AIRLOCK_TOOLS")
	if tools == "" {
		tools = "/opt/airlock-tools"
	}
	if p := filepath.Join(tools, "bin", "helm"); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	const why = "helm not installed (scripts/tools.sh installs it)"
	if os.Getenv("AIRLOCK_REQUIRE_TOOLS") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// helmTemplate renders chart with values, hooks included, and decodes
// every document.
func helmTemplate(t *testing.T, helm, chart, values string) []k8sDoc {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(helm, "template", "rel", chart, "--namespace", "airlock", "-f", values)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	var docs []k8sDoc
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var d k8sDoc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("helm template output is not YAML: %v", err)
		}
		if d.Kind != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

// findDaemonSet is the one DaemonSet of the component (the
// app.kubernetes.io/component label) with the helm.sh/hook annotation hook
// ("" for none).
func findDaemonSet(t *testing.T, docs []k8sDoc, component, hook string) k8sDoc {
	t.Helper()
	var found []k8sDoc
	for _, d := range docs {
		if d.Kind == "DaemonSet" && d.Metadata.Labels["app.kubernetes.io/component"] == component && d.Metadata.Annotations["helm.sh/hook"] == hook {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d DaemonSets of component %q with hook %q rendered, want 1", len(found), component, hook)
	}
	return found[0]
}

func findContainer(t *testing.T, cs []k8sContainer, name string) k8sContainer {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q rendered", name)
	return k8sContainer{}
}

// podMount is one volume mount of a container, as the test maps it.
type podMount struct {
	mountPath string
	target    string // where the test puts it
	hostPath  string // the node's path ("" for a ConfigMap)
	readOnly  bool
}

// podFS is a container's view of the node: its mounts mapped onto the
// temp root, and the rewritten airlock.yaml. Its processes run with each
// mapped mount bind-mounted onto itself (read-only where the pod's is),
// in a mount namespace of their own: a mount point, as in the pod, cannot
// be removed, nor a mounted file replaced by a rename.
type podFS struct {
	name   string
	mounts []podMount
}

// newPodFS maps c's volume mounts: hostPath ones onto root (creating the
// DirectoryOrCreate ones, as kubelet does before the pod starts), configMap
// ones onto a directory under dir holding the ConfigMap's data, where
// airlock.yaml gets node.root and node.toolsRoot rewritten.
func newPodFS(t *testing.T, name string, spec k8sPodSpec, c k8sContainer, docs []k8sDoc, root, dir string) *podFS {
	t.Helper()
	vols := map[string]k8sVolume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	fs := &podFS{name: name}
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok || m.SubPath != "" {
			t.Fatalf("%s: mount %s: no volume of that name, or a subPath (not mapped by this test)", name, m.Name)
		}
		switch {
		case v.HostPath != nil:
			target := filepath.Join(root, v.HostPath.Path)
			if v.HostPath.Path == "/" {
				target = "/" // the host's / (node.toolsRoot): this machine's, see the test comment
			}
			switch v.HostPath.Type {
			case "DirectoryOrCreate":
				if err := os.MkdirAll(target, 0o755); err != nil {
					t.Fatal(err)
				}
			case "File", "Directory":
				if !fileExists(target) {
					t.Fatalf("%s: hostPath %s (type %s) missing under the temp root: kubelet would not start the pod", name, v.HostPath.Path, v.HostPath.Type)
				}
			default:
				t.Fatalf("%s: hostPath %s type %q: not mapped by this test", name, v.HostPath.Path, v.HostPath.Type)
			}
			fs.mounts = append(fs.mounts, podMount{mountPath: m.MountPath, target: target, hostPath: v.HostPath.Path, readOnly: m.ReadOnly})
		case v.ConfigMap != nil:
			target := filepath.Join(dir, "configmap-"+v.ConfigMap.Name)
			data := configMapData(t, docs, v.ConfigMap.Name)
			for k, text := range data {
				if k == "airlock.yaml" {
					text = fs.rewriteConfig(t, text, root)
				}
				writeFileDirs(t, filepath.Join(target, k), text)
			}
			fs.mounts = append(fs.mounts, podMount{mountPath: m.MountPath, target: target, readOnly: true})
		default:
			t.Fatalf("%s: volume %s is neither hostPath nor configMap: not mapped by this test", name, m.Name)
		}
	}
	fs.checkHostPrefix(t)
	return fs
}

func configMapData(t *testing.T, docs []k8sDoc, name string) map[string]string {
	t.Helper()
	for _, d := range docs {
		if d.Kind == "ConfigMap" && d.Metadata.Name == name {
			return d.Data
		}
	}
	t.Fatalf("ConfigMap %s not rendered", name)
	return nil
}

// rewriteConfig sets node.root and node.toolsRoot of the rendered
// airlock.yaml (yaml.v3 node tree: every other line stays as rendered).
// node.root must be /host, the parent of every /host/... mount, each of
// which must be the node's path of the same name: then /host is the
// node's / and maps onto root.
func (fs *podFS) rewriteConfig(t *testing.T, text, root string) string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("%s: airlock.yaml: %v", fs.name, err)
	}
	nodeSec := mappingValue(doc.Content[0], "node")
	if nodeSec == nil {
		t.Fatalf("%s: airlock.yaml has no node section", fs.name)
	}
	rootNode, toolsNode := mappingValue(nodeSec, "root"), mappingValue(nodeSec, "toolsRoot")
	if rootNode == nil || rootNode.Value != "/host" {
		t.Fatalf("%s: node.root %v, want /host", fs.name, rootNode)
	}
	t.Logf("%s: rewrote airlock.yaml node.root %q → %q", fs.name, rootNode.Value, root)
	rootNode.Value = root
	if toolsNode != nil {
		t.Logf("%s: rewrote airlock.yaml node.toolsRoot %q → \"/\" (this machine's nft and ip)", fs.name, toolsNode.Value)
		toolsNode.Value = "/"
	}
	b, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// checkHostPrefix: every mount under /host/ is the node's path of the
// same name, so node.root /host is the node's /.
func (fs *podFS) checkHostPrefix(t *testing.T) {
	t.Helper()
	for _, m := range fs.mounts {
		if rest, ok := strings.CutPrefix(m.mountPath, "/host/"); ok && m.hostPath != "/"+rest {
			t.Fatalf("%s: %s mounts the node's %s: /host is not the node's /", fs.name, m.mountPath, m.hostPath)
		}
	}
}

// mapPath maps a path in the container onto the test's files through the
// longest mount covering it.
func (fs *podFS) mapPath(t *testing.T, p string) string {
	t.Helper()
	best := -1
	for i, m := range fs.mounts {
		if (p == m.mountPath || strings.HasPrefix(p, m.mountPath+"/")) && (best < 0 || len(m.mountPath) > len(fs.mounts[best].mountPath)) {
			best = i
		}
	}
	if best < 0 {
		t.Fatalf("%s: %s is under no mount of the container: not mapped", fs.name, p)
	}
	m := fs.mounts[best]
	return filepath.Join(m.target, strings.TrimPrefix(p, m.mountPath))
}

// writable: the node path rel (relative to the node's /) lies under a
// writable hostPath mount.
func (fs *podFS) writable(rel string) bool {
	p := "/" + strings.TrimSuffix(rel, "/")
	for _, m := range fs.mounts {
		if m.hostPath == "" || m.readOnly || m.hostPath == "/" {
			continue
		}
		if p == m.hostPath || strings.HasPrefix(p, m.hostPath+"/") {
			return true
		}
	}
	return false
}

var k8sVarRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// args are c's args as the pod runs them: $(VAR) expanded from c's env
// (fieldRef values from fields), absolute paths mapped through the
// mounts. The command must be the image's entrypoint (airlock).
func (fs *podFS) args(t *testing.T, c k8sContainer, fields map[string]string) []string {
	t.Helper()
	if len(c.Command) != 0 {
		t.Fatalf("%s: command %q: the test runs the image's entrypoint (airlock) only", fs.name, c.Command)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && fields[e.ValueFrom.FieldRef.FieldPath] != "":
			env[e.Name] = fields[e.ValueFrom.FieldRef.FieldPath]
		default:
			t.Fatalf("%s: env %s: a valueFrom this test does not play", fs.name, e.Name)
		}
	}
	var out []string
	for _, a := range c.Args {
		x := k8sVarRef.ReplaceAllStringFunc(a, func(ref string) string {
			name := ref[2 : len(ref)-1]
			v, ok := env[name]
			if !ok {
				t.Fatalf("%s: arg %q: $(%s) is not in the container's env", fs.name, a, name)
			}
			return v
		})
		if strings.HasPrefix(x, "/") {
			x = fs.mapPath(t, x)
		}
		if x != a {
			t.Logf("%s: arg %q → %q", fs.name, a, x)
		}
		out = append(out, x)
	}
	return out
}

// writeFileDirs is writeFile that creates the parent directories.
func writeFileDirs(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, content)
}

// command is bin with args run the way the pod runs it: in a mount
// namespace of its own (unshare) where every mapped mount but the host's
// / is a bind mount onto itself, read-only where the pod's mount is.
func (fs *podFS) command(bin string, args []string) []string {
	var script strings.Builder
	for _, m := range fs.mounts {
		if m.target == "/" {
			continue
		}
		fmt.Fprintf(&script, "mount --bind %s %s\n", shQuote(m.target), shQuote(m.target))
		if m.readOnly {
			fmt.Fprintf(&script, "mount -o remount,bind,ro %s\n", shQuote(m.target))
		}
	}
	script.WriteString(`exec "$0" "$@"`)
	return append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-ec", script.String(), bin}, args...)
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// diffTrees: the paths of b not in a, and the paths of a missing or
// different in b, sorted.
func diffTrees(a, b map[string]string) (added, changed []string) {
	for k := range b {
		if _, ok := a[k]; !ok {
			added = append(added, k)
		}
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			changed = append(changed, k)
		}
	}
	sort.Strings(added)
	sort.Strings(changed)
	return added, changed
}
