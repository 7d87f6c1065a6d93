//go:build e2e

package node

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// rawManifest is a manifest pushed as is (an OCI artifact).
type rawManifest struct {
	body []byte
	mt   types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.body, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// TestE2ENodePodmanPullsThroughAirlock: the registries.conf drop-in node
// apply writes (the one CRI-O reads too) makes the real podman pull an
// image, and skopeo (the same containers/image and registries.conf;
// Debian's podman 4.3 has no `podman artifact`) an OCI artifact, through
// the airlock registry, while the upstream is reachable only from the
// gateway namespace. The node is userDefinedRouting: what it routes to
// the gateway leaves it, and airlock's gateway there decides. A registry
// without a cache rule fails at airlock (the catch-all) with no packet
// from the node to it — nftables counters in the node and the gateway,
// and the gateway's flow count (airlock_egress_flows_total) stay 0;
// airlock verify passes, and reports the fallback once the catch-all is
// removed — then podman dials the registry itself, the packets reach the
// gateway and airlock's gateway denies the flow.
//
//	node 198.18.71.2/24 ──veth── gw 198.18.71.1/24 (airlock registry :5000, gateway, admin on 127.0.0.1:9090;
//	                                 upstream docker-registry on its 127.0.0.1:5001) ──veth── inet 198.18.73.2/24
//	inet lo 198.18.72.20 ("registry.unruled.com", no cache rule; :443 and :80 answer)
func TestE2ENodePodmanPullsThroughAirlock(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, nftables, mount namespaces)")
	}
	for _, bin := range []string{"podman", "skopeo", "docker-registry", "nft", "ip", "unshare"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (scripts/deps.sh installs it)", bin)
		}
	}
	dir, err := os.MkdirTemp("", "alxn-pm-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	node, gw, inet := "alxn-pn-"+id, "alxn-pg-"+id, "alxn-pi-"+id
	netnstest.Add(t, node)
	netnstest.Add(t, gw)
	netnstest.Add(t, inet)
	netnstest.Exec(t, "ip", "link", "add", "n0", "netns", node, "type", "veth", "peer", "name", "g0", "netns", gw)
	netnstest.Exec(t, "ip", "link", "add", "g1", "netns", gw, "type", "veth", "peer", "name", "i0", "netns", inet)
	for _, c := range [][]string{
		{"-n", node, "addr", "add", "198.18.71.2/24", "dev", "n0"},
		{"-n", node, "link", "set", "n0", "up"},
		{"-n", node, "link", "set", "lo", "up"},
		{"-n", node, "route", "add", "default", "via", "198.18.71.1"},
		{"-n", gw, "addr", "add", "198.18.71.1/24", "dev", "g0"},
		{"-n", gw, "link", "set", "g0", "up"},
		{"-n", gw, "link", "set", "lo", "up"},
		{"-n", gw, "addr", "add", "198.18.73.1/24", "dev", "g1"},
		{"-n", gw, "link", "set", "g1", "up"},
		{"-n", gw, "route", "add", "198.18.72.0/24", "via", "198.18.73.2"},
		{"-n", inet, "addr", "add", "198.18.73.2/24", "dev", "i0"},
		{"-n", inet, "link", "set", "i0", "up"},
		{"-n", inet, "link", "set", "lo", "up"},
		{"-n", inet, "addr", "add", "198.18.72.20/32", "dev", "lo"},
		{"-n", inet, "route", "add", "default", "via", "198.18.73.1"},
	} {
		netnstest.Exec(t, append([]string{"ip"}, c...)...)
	}
	netnstest.Exec(t, "ip", "netns", "exec", gw, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// The unruled registry's address answers TCP, so a packet that got
	// there would connect.
	for _, port := range []string{"443", "80"} {
		acceptAndClose(t, inet, "198.18.72.20:"+port)
	}
	// Counters: packets the node sends to the unruled registry (before
	// airlock's table decides), and packets from the node arriving at
	// the gateway for it (before its interception).
	nodeCount := packetCounter(t, node, "output", "ip daddr 198.18.72.20")
	gwCount := packetCounter(t, gw, "prerouting", "ip saddr 198.18.71.2 ip daddr 198.18.72.20")
	counter := func(ns string) int {
		if ns == node {
			return nodeCount()
		}
		return gwCount()
	}

	airlockBin := e2eAirlockBin(t, dir)

	// Upstream "mcr.microsoft.com": docker-registry on the gateway's loopback.
	gc := startUpstream(t, gw, dir, "")
	imgDigest := pushPause(t, gc)
	// An OCI artifact: empty config, one file layer, artifactType.
	artRepo, err := name.NewRepository("127.0.0.1:5001/oss/kubernetes/node-artifact", name.Insecure)
	must(t, err)
	cfg := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	file := static.NewLayer([]byte("kubelet bytes "+id), "application/vnd.airlock.test.file.v1")
	must(t, remote.WriteLayer(artRepo, cfg, remote.WithTransport(gc.Transport)))
	must(t, remote.WriteLayer(artRepo, file, remote.WithTransport(gc.Transport)))
	cd, _ := cfg.Digest()
	fd, _ := file.Digest()
	fs, _ := file.Size()
	art := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.airlock.test.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},"layers":[{"mediaType":"application/vnd.airlock.test.file.v1","digest":%q,"size":%d,"annotations":{"org.opencontainers.image.title":"kubelet"}}]}`, cd, fd, fs)
	must(t, remote.Put(artRepo.Tag("1.0"), rawManifest{[]byte(art), types.OCIManifestSchema1}, remote.WithTransport(gc.Transport)))

	// The airlock registry in the gateway namespace.
	cfgPath := filepath.Join(dir, "airlock.yaml")
	root := filepath.Join(dir, "root")
	must(t, os.WriteFile(cfgPath, fmt.Appendf(nil, `version: 1
admin: { listen: "127.0.0.1:9090" }
gateway:
  transparentListen: "0.0.0.0:15001"
registry:
  listen: 198.18.71.1:5000
  storage: { path: %q }
  anonymousPull: true
  cacheRules:
    - { name: aks-managed-mcr, sourceRepo: "mcr.microsoft.com/*", targetRepo: "aks-managed-repository/*" }
  upstreams: { mcr.microsoft.com: { url: "http://127.0.0.1:5001" } }
  upstreamTimeout: 5s
node:
  root: %q
  outboundType: userDefinedRouting
  gateway: 198.18.71.1
  artifactSource: Cache
  runtimes: [ podman ]
  sandboxImage: mcr.microsoft.com/oss/kubernetes/pause:3.6
  registry: 198.18.71.1:5000
verify:
  targets:
    registryImage: mcr.microsoft.com/oss/kubernetes/pause:3.6
`, filepath.Join(dir, "airlock-storage"), root), 0o644))
	startIn(t, gw, filepath.Join(dir, "airlock.log"), airlockBin, "serve", "--config", cfgPath)
	nc := &http.Client{Transport: &http.Transport{DialContext: nsDial(node), Proxy: nil}, Timeout: 10 * time.Second}
	waitHTTP(t, nc, "http://198.18.71.1:5000/v2/")
	waitHTTP(t, gc, "http://127.0.0.1:9090/metrics")
	if out, code := runCmd(t, airlockBin, "gateway", "rules", "--config", cfgPath, gw); code != 0 {
		t.Fatalf("airlock gateway rules: exit %d\n%s", code, out)
	}
	// flows is the gateway's count of decided flows (every verdict).
	flows := func() int {
		t.Helper()
		resp, err := gc.Get("http://127.0.0.1:9090/metrics")
		must(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		total := 0
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "airlock_egress_flows_total{") {
				f := strings.Fields(l)
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				total += int(v)
			}
		}
		return total
	}
	// decisions are the gateway's decision records for the unruled
	// registry's address.
	decisions := func() []string {
		var out []string
		for _, l := range strings.Split(string(mustRead(t, filepath.Join(dir, "airlock.log"))), "\n") {
			if strings.Contains(l, `"egress decision"`) && strings.Contains(l, `"dst":"198.18.72.20:`) {
				out = append(out, l)
			}
		}
		return out
	}

	// The node: podman's policy.json (its /etc/containers is root's, below)
	// and a hosts file naming the unruled registry; no real DNS is asked.
	must(t, os.MkdirAll(filepath.Join(root, "etc/containers/registries.conf.d"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc/containers/policy.json"), []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`+"\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "hosts"), []byte("127.0.0.1 localhost\n198.18.72.20 registry.unruled.com\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver 198.18.71.1\noptions timeout:1 attempts:1\n"), 0o644))
	before := snapshot(t, root)

	out, code := runCmd(t, airlockBin, "node", "apply", "--config", cfgPath, node)
	if code != 0 {
		t.Fatalf("airlock node apply: exit %d\n%s", code, out)
	}
	t.Logf("node apply:\n%s", out)
	if !strings.Contains(out, "runtime: podman (listed in node.runtimes") {
		t.Errorf("node apply does not say which runtime it configured:\n%s", out)
	}
	dropIn := filepath.Join(root, "etc/containers/registries.conf.d/99-airlock.conf")
	conf, err := os.ReadFile(dropIn)
	must(t, err)

	// podman with private storage, in a mount namespace of its own where
	// /etc/containers is root's (the file apply wrote) and /etc/hosts ours.
	storage := filepath.Join(dir, "storage")
	podman := func(args ...string) (string, error) {
		script := fmt.Sprintf("mount --bind %s /etc/containers && mount --bind %s /etc/hosts && mount --bind %s /etc/resolv.conf && exec \"$@\"",
			filepath.Join(root, "etc/containers"), filepath.Join(dir, "hosts"), filepath.Join(dir, "resolv.conf"))
		full := append([]string{"netns", "exec", node, "unshare", "-m", "sh", "-c", script, "sh"}, args...)
		cmd := exec.Command("ip", full...)
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(dir, "xdg"), "HOME="+dir)
		o, err := cmd.CombinedOutput()
		return string(o), err
	}
	pm := []string{"podman", "--root", storage + "/root", "--runroot", storage + "/run", "--storage-driver", "vfs", "--events-backend", "none", "--cgroup-manager", "cgroupfs"}

	// podman read our file: `podman info` lists its registries.
	info, err := podman(append(pm, "info", "--format", "json")...)
	if err != nil {
		t.Fatalf("podman info: %v\n%s", err, info)
	}
	var pi struct {
		Registries map[string]json.RawMessage `json:"registries"`
	}
	must(t, json.Unmarshal([]byte(info[strings.Index(info, "{"):]), &pi))
	mcr := string(pi.Registries["mcr.microsoft.com"])
	if !strings.Contains(mcr, "198.18.71.1:5000/aks-managed-repository") {
		t.Fatalf("podman info registries do not hold airlock's entry for mcr.microsoft.com (%s): podman did not read %s", mcr, dropIn)
	}
	t.Logf("podman info: mcr.microsoft.com = %s; search = %s", mcr, pi.Registries["search"])

	// An image and an artifact through airlock.
	if out, err := podman(append(pm, "pull", "mcr.microsoft.com/oss/kubernetes/pause:3.6")...); err != nil {
		t.Fatalf("podman pull: %v\n%s", err, out)
	} else {
		t.Logf("podman pull: %s", lastLines(out, 1))
	}
	if out, err := podman(append(pm, "image", "inspect", "--format", "{{.Digest}}", "mcr.microsoft.com/oss/kubernetes/pause:3.6")...); err != nil || !strings.Contains(out, imgDigest.String()) {
		t.Errorf("podman image inspect = %q %v, want digest %s", out, err, imgDigest)
	}
	layout := filepath.Join(dir, "artifact-layout")
	if out, err := podman("skopeo", "copy", "docker://mcr.microsoft.com/oss/kubernetes/node-artifact:1.0", "oci:"+layout+":1.0"); err != nil {
		t.Fatalf("skopeo copy of the artifact: %v\n%s", err, out)
	}
	blob, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", fd.Hex))
	if err != nil || string(blob) != "kubelet bytes "+id {
		t.Errorf("artifact layer in the layout = %q %v", blob, err)
	} else {
		t.Logf("skopeo copy: artifact layer %s (%d bytes) in the OCI layout", fd, len(blob))
	}
	alog, _ := os.ReadFile(filepath.Join(dir, "airlock.log"))
	for _, want := range []string{"aks-managed-repository/oss/kubernetes/pause", "aks-managed-repository/oss/kubernetes/node-artifact"} {
		if !strings.Contains(string(alog), want) {
			t.Errorf("airlock log has no request for %s", want)
		}
	}

	// A registry without a cache rule: refused at airlock, never reached.
	out, err = podman(append(pm, "pull", "registry.unruled.com/team/app:1")...)
	if err == nil {
		t.Fatalf("pull from a registry without a cache rule succeeded:\n%s", out)
	}
	t.Logf("unruled pull: %s", lastLines(out, 1))
	if !strings.Contains(out, "198.18.71.1:5000/airlock-unpinned/team/app") {
		t.Errorf("unruled pull did not go to airlock's catch-all:\n%s", out)
	}
	if n, g, f, d := counter(node), counter(gw), flows(), len(decisions()); n != 0 || g != 0 || f != 0 || d != 0 {
		t.Errorf("packets to the unruled registry: %d from the node, %d at the gateway, %d gateway flows (%d decisions for it); want 0", n, g, f, d)
	} else {
		t.Logf("unruled pull: 0 packets from the node to 198.18.72.20, 0 at the gateway, 0 gateway flows (airlock_egress_flows_total), 0 decision records")
	}
	if !strings.Contains(string(mustRead(t, filepath.Join(dir, "airlock.log"))), "airlock-unpinned/team/app") {
		t.Error("airlock log does not show the refused catch-all request")
	}

	// A short name is searched nowhere (unqualified-search-registries = []).
	out, err = podman(append(pm, "pull", "app:1")...)
	if err == nil || !strings.Contains(out, "short-name") {
		t.Errorf("short-name pull = %v:\n%s\nwant a short-name error", err, out)
	}
	t.Logf("short-name pull: %s", lastLines(out, 1))

	// verify passes.
	out, code = runCmd(t, airlockBin, "verify", "--config", cfgPath, node)
	t.Logf("verify:\n%s", out)
	if code != 0 {
		t.Errorf("verify: exit %d", code)
	}
	for _, want := range []string{"registries-conf-pinned", "registries-conf-image", "reachable", "registries-conf-unpinnable"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q", want)
		}
	}

	// The catch-all removed: verify reports the fallback, and the pull
	// goes for the registry itself: under userDefinedRouting the packets
	// reach the gateway, which denies the flow.
	noCatchAll := string(conf)[:strings.Index(string(conf), "\n# catch-all")] + "\n"
	must(t, os.WriteFile(dropIn, []byte(noCatchAll), 0o644))
	out, code = runCmd(t, airlockBin, "verify", "--config", cfgPath, node)
	t.Logf("verify without the catch-all:\n%s", out)
	if code == 0 || !strings.Contains(out, "registry.example.com/airlock-verify/image:1 has no [[registry]] entry") {
		t.Errorf("verify without the catch-all: exit %d, want a finding naming the fallback", code)
	}
	// (bounded: containers/image would wait out its dial timeouts)
	out, err = podman(append([]string{"timeout", "20"}, append(pm, "pull", "registry.unruled.com/team/app:1")...)...)
	t.Logf("unruled pull without the catch-all: %v %s", err, lastLines(out, 1))
	n, g, d := counter(node), counter(gw), decisions()
	t.Logf("packets to the unruled registry without the catch-all: %d from the node, %d at the gateway, %d gateway decisions for it", n, g, len(d))
	if err == nil || n == 0 || g == 0 || len(d) == 0 {
		t.Errorf("without the catch-all: pull err %v, %d packets from the node, %d at the gateway, %d decisions; want a failure and all three > 0 (the contrast)", err, n, g, len(d))
	} else if !strings.Contains(d[0], `"verdict":"deny"`) || !strings.Contains(d[0], "registry.unruled.com") {
		t.Errorf("gateway decision: %s, want a deny naming registry.unruled.com", d[0])
	} else {
		t.Logf("gateway decision: %.400s", d[0])
	}
	must(t, os.WriteFile(dropIn, conf, 0o644))

	// status and reset.
	out, code = runCmd(t, airlockBin, "node", "status", "--config", cfgPath, node)
	if code != 0 || !strings.Contains(out, "/etc/containers/registries.conf.d/99-airlock.conf (containers-registries.conf drop-in): as applied") {
		t.Errorf("node status: exit %d\n%s", code, out)
	}
	out, code = runCmd(t, airlockBin, "node", "reset", "--config", cfgPath, node)
	if code != 0 {
		t.Fatalf("node reset: exit %d\n%s", code, out)
	}
	checkDiff(t, "files after reset", before, snapshot(t, root))
}

// runCmd runs the airlock binary in network namespace ns.
func runCmd(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	ns := args[len(args)-1]
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args[:len(args)-1]...)...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return b
}
