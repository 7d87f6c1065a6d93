//go:build e2e

package node

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/containerdtest"
	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// The containerd pin rig: two namespaces.
//
//	[node] n0 198.18.93.2 ── g0 198.18.93.1 [gw]
//
// gw runs airlock serve (registry on 198.18.93.1:5000, the gateway with
// `airlock gateway rules` intercepting what the node forwards on 80/443,
// /metrics on :9090) and docker-registry, the mcr.microsoft.com upstream,
// on gw's own loopback (127.0.0.1:5001): the node cannot reach it. The
// node routes everything else through gw (userDefinedRouting).
// noRuleRegistry has no cache rule: nothing listens there, the gateway
// would see (and deny) a direct pull.
const (
	pinNode        = "198.18.93.2"
	pinGw          = "198.18.93.1"
	noRuleRegistry = "198.18.92.10"
	artifactType   = "application/vnd.airlock.test.sbom.v1"
	artifactConfig = "application/vnd.airlock.test.sbom.config.v1+json"
)

// containerdBuild is one containerd under test.
type containerdBuild struct {
	name            string
	containerd, ctr string
	configVersion   int // of the node's config.toml
}

// containerdBuilds are Debian's containerd 1.6 and containerd 2 from
// scripts/tools.sh ($AIRLOCK_TOOLS/bin).
func containerdBuilds() []containerdBuild {
	return []containerdBuild{
		{name: "containerd1.6", containerd: "/usr/bin/containerd", ctr: "/usr/bin/ctr", configVersion: 2},
		{name: "containerd2", containerd: toolsBin("containerd"), ctr: toolsBin("ctr"), configVersion: 3},
	}
}

// TestE2EContainerdPinned: for containerd 1.6 and 2.x, `airlock node
// apply` pins containerd to airlock with no fallback. In a node whose
// upstream is unreachable, containerd (ctr with the certs.d apply wrote)
// pulls an image and an OCI artifact through airlock; a pull from a
// registry without a cache rule fails at airlock (NAME_UNKNOWN) with not
// one packet from the node to that registry (the node's nftables counter)
// and no flow at the gateway (its flow count and decision log); verify
// passes. With _default removed verify reports the fallback, and the same
// pull goes to the registry itself: the counter and the gateway see it.
func TestE2EContainerdPinned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, nftables, containerd)")
	}
	for _, bin := range []string{"docker-registry", "nft", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (scripts/deps.sh installs it)", bin)
		}
	}
	airlockBin := e2eAirlockBin(t, t.TempDir())
	for _, b := range containerdBuilds() {
		t.Run(b.name, func(t *testing.T) {
			for _, p := range []string{b.containerd, b.ctr} {
				if _, err := os.Stat(p); err != nil {
					if os.Getenv("AIRLOCK_REQUIRE_TOOLS") == "1" {
						t.Fatalf("%s: %v (scripts/deps.sh installs containerd 1.6, scripts/tools.sh containerd 2)", p, err)
					}
					t.Skipf("%s not installed (scripts/deps.sh installs containerd 1.6, scripts/tools.sh containerd 2)", p)
				}
			}
			testContainerdPinned(t, b, airlockBin)
		})
	}
}

func testContainerdPinned(t *testing.T, b containerdBuild, airlockBin string) {
	version, _ := exec.Command(b.containerd, "--version").Output()
	t.Logf("%s", bytes.TrimSpace(version))
	dir, err := os.MkdirTemp("", "alxn-pin-") // short: containerd's socket path
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	var rb [3]byte
	rand.Read(rb[:])
	id := hex.EncodeToString(rb[:])
	node, gw := "alxn-cn-"+id, "alxn-cg-"+id
	netnstest.Add(t, node)
	netnstest.Add(t, gw)
	n0, g0 := "alxn"+id+"n", "alxn"+id+"g"
	netnstest.Exec(t, "ip", "link", "add", n0, "netns", node, "type", "veth", "peer", "name", g0, "netns", gw)
	for _, c := range [][]string{
		{"-n", node, "addr", "add", pinNode + "/24", "dev", n0}, {"-n", node, "link", "set", n0, "up"}, {"-n", node, "link", "set", "lo", "up"},
		{"-n", gw, "addr", "add", pinGw + "/24", "dev", g0}, {"-n", gw, "link", "set", g0, "up"}, {"-n", gw, "link", "set", "lo", "up"},
	} {
		netnstest.Exec(t, append([]string{"ip"}, c...)...)
	}
	netnstest.Exec(t, "ip", "netns", "exec", gw, "sysctl", "-qw", "net.ipv4.ip_forward=1")

	// The upstream, seeded with an image and an artifact.
	gwHTTP := startUpstream(t, gw, dir, "")
	imgDigest := pushPause(t, gwHTTP)
	art := pushArtifact(t, gwHTTP, "http://127.0.0.1:5001", "oss/artifacts/sbom", "1")

	// airlock serve in gw, and its interception.
	root := filepath.Join(dir, "root")
	cfg := filepath.Join(dir, "airlock.yaml")
	must(t, os.WriteFile(cfg, fmt.Appendf(nil, `version: 1
log: { format: json, level: info }
admin: { listen: "%[1]s:9090" }
registry:
  listen: "%[1]s:5000"
  storage: { path: %[2]q }
  anonymousPull: true
  cacheRules:
    - { name: aks-managed-mcr, sourceRepo: "mcr.microsoft.com/*", targetRepo: "aks-managed-repository/*" }
  upstreams: { mcr.microsoft.com: { url: "http://127.0.0.1:5001" } }
  upstreamTimeout: 5s
gateway:
  transparentListen: "0.0.0.0:15001"
  l4Listen: "0.0.0.0:15002"
policy:
  ruleCollectionGroups:
    - name: cluster
      priority: 100
      ruleCollections:
        - name: app
          type: application
          priority: 200
          action: allow
          rules:
            - { name: web, protocols: ["https:443"], sourceAddresses: ["198.18.0.0/15"], targetFqdns: [allowed.test] }
node:
  root: %[3]q
  outboundType: userDefinedRouting
  artifactSource: Cache
  runtimes: [containerd]
  sandboxImage: mcr.microsoft.com/oss/kubernetes/pause:3.6
  registry: "%[1]s:5000"
  gateway: %[1]s
verify:
  targets:
    registryImage: "mcr.microsoft.com/oss/kubernetes/pause:3.6"
`, pinGw, filepath.Join(dir, "airlock-data"), root), 0o644))
	alog := filepath.Join(dir, "airlock.log")
	startIn(t, gw, alog, airlockBin, "serve", "--config", cfg)
	waitHTTP(t, gwHTTP, "http://"+pinGw+":5000/v2/")
	if out, err := exec.Command("ip", "netns", "exec", gw, airlockBin, "gateway", "rules", "--config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("airlock gateway rules: %v\n%s", err, out)
	}

	// The node: a containerd config of the build's version, then apply.
	nodeCfg := "version = 2\n# the node's own settings\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.6\"\n"
	if b.configVersion == 3 {
		nodeCfg = "# the node's own settings\n" + containerd2Default
	}
	writeUnder(t, root, "/etc/containerd/config.toml", nodeCfg)
	out, err := exec.Command("ip", "netns", "exec", node, airlockBin, "node", "apply", "--config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("airlock node apply: %v\n%s", err, out)
	}
	t.Logf("node apply:\n%s", out)
	if !strings.Contains(string(out), "containerd must restart") {
		t.Errorf("node apply did not say containerd must restart:\n%s", out)
	}
	hostsDir := filepath.Join(root, "etc/containerd/certs.d")
	// containerd itself reads the edited config where apply meant it
	// (containerd 2 migrates a version 2 file to its own keys).
	dump, err := exec.Command(b.containerd, "--config", filepath.Join(root, "etc/containerd/config.toml"), "config", "dump").Output()
	if err != nil {
		t.Fatalf("containerd config dump of the edited config: %v", err)
	}
	d := strings.ReplaceAll(string(dump), "'", `"`)
	for _, want := range []string{`config_path = "/etc/containerd/certs.d"`, `"mcr.microsoft.com/oss/kubernetes/pause:3.6"`} {
		if !strings.Contains(d, want) {
			t.Errorf("containerd config dump of the edited config lacks %s:\n%s", want, dump)
		}
	}

	// A counter of packets from the node to the registry without a rule,
	// ahead of everything else in the output hook.
	packets := packetCounter(t, node, "output", "ip daddr "+noRuleRegistry)
	// The same counter on the gateway host: airlock itself sends nothing
	// to a registry it has no rule for.
	gwPackets := packetCounter(t, gw, "output", "ip daddr "+noRuleRegistry)

	// containerd in the node, on a private root.
	// containerd 2 pulls with its transfer service (as its CRI does),
	// which unpacks with the snapshotter configured for the platform.
	unpack := ""
	if b.configVersion == 3 {
		unpack = fmt.Sprintf("[[plugins.\"io.containerd.transfer.v1.local\".unpack_config]]\n  platform = \"linux/%s\"\n  snapshotter = \"native\"\n", runtime.GOARCH)
	}
	cd := containerdtest.Start(t, containerdtest.Options{Dir: filepath.Join(dir, "ctrd"), Log: filepath.Join(dir, "containerd.log"),
		Binary: b.containerd, Ctr: b.ctr, Config: unpack, Netns: node, Namespace: "alxn", Wait: 20 * time.Second})
	ctr := cd.Ctr
	// ctrOut is ctr's standard output alone (containerd 2 warns on stderr).
	ctrOut := cd.CtrOut

	t.Run("image and artifact through airlock", func(t *testing.T) {
		out, err := ctr("images", "pull", "--snapshotter", "native", "--hosts-dir", hostsDir, "mcr.microsoft.com/oss/kubernetes/pause:3.6")
		if err != nil {
			t.Fatalf("ctr images pull: %v\n%s", err, out)
		}
		if got, _ := ctr("images", "ls", "-q"); !strings.Contains(got, "mcr.microsoft.com/oss/kubernetes/pause:3.6") {
			t.Errorf("ctr images ls = %q, want the pulled image", got)
		}
		if m, err := ctr("content", "get", imgDigest.String()); err != nil || len(m) == 0 {
			t.Errorf("ctr content get %s (the image manifest) = %v", imgDigest, err)
		}
		out, err = ctr("content", "fetch", "--hosts-dir", hostsDir, "mcr.microsoft.com/oss/artifacts/sbom:1")
		if err != nil {
			t.Fatalf("ctr content fetch (artifact): %v\n%s", err, out)
		}
		got, err := ctrOut("content", "get", art.layer)
		if err != nil || got != string(art.layerData) {
			t.Errorf("ctr content get %s (the artifact's layer) = %q %v, want %q", art.layer, got, err, art.layerData)
		}
		if got, err := ctr("content", "get", art.manifest); err != nil || !strings.Contains(got, artifactType) {
			t.Errorf("ctr content get %s (the artifact manifest) = %q %v, want its artifactType", art.manifest, got, err)
		}
		l, _ := os.ReadFile(alog)
		if !strings.Contains(string(l), "aks-managed-repository/oss/artifacts/sbom") {
			t.Errorf("airlock's log has no request for the artifact under aks-managed-repository")
		}
	})

	t.Run("registry without a cache rule: refused, no packet to it", func(t *testing.T) {
		// airlock itself answers NAME_UNKNOWN for a registry it has no rule for.
		nodeHTTP := &http.Client{Transport: &http.Transport{DialContext: nsDial(node), Proxy: nil}, Timeout: 10 * time.Second}
		resp, err := nodeHTTP.Get("http://" + pinGw + ":5000/v2/other/img/manifests/1?ns=" + noRuleRegistry)
		must(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "NAME_UNKNOWN") {
			t.Errorf("airlock for ?ns=%s = %d %s, want 404 NAME_UNKNOWN", noRuleRegistry, resp.StatusCode, body)
		}
		flows := gatewayFlows(t, gwHTTP)
		out, err := ctr("images", "pull", "--snapshotter", "native", "--hosts-dir", hostsDir, noRuleRegistry+"/other/img:1")
		if err == nil {
			t.Fatalf("ctr images pull %s/other/img:1 succeeded:\n%s", noRuleRegistry, out)
		}
		t.Logf("pull without a rule: %s", lastLines(out, 2))
		if n := packets(); n != 0 {
			t.Errorf("nft counter: %d packets from the node to %s, want 0", n, noRuleRegistry)
		}
		if n := gwPackets(); n != 0 {
			t.Errorf("nft counter: %d packets from the gateway host (airlock) to %s, want 0", n, noRuleRegistry)
		}
		if after := gatewayFlows(t, gwHTTP); after != flows {
			t.Errorf("gateway flows %d → %d during the pull, want no new flow", flows, after)
		}
		if l, _ := os.ReadFile(alog); bytes.Contains(l, []byte(`"dst":"`+noRuleRegistry)) {
			t.Errorf("airlock's decision log names %s", noRuleRegistry)
		}
		t.Logf("nft counters to %s: node %d packets, gateway host %d; gateway flows: %d before, %d after", noRuleRegistry, packets(), gwPackets(), flows, gatewayFlows(t, gwHTTP))
	})

	t.Run("CRI pulls through config_path", func(t *testing.T) {
		crictl := toolsBin("crictl")
		if _, err := os.Stat(crictl); err != nil {
			if os.Getenv("AIRLOCK_REQUIRE_TOOLS") == "1" {
				t.Fatalf("%s: %v (scripts/tools.sh installs crictl)", crictl, err)
			}
			t.Skip("crictl not installed (scripts/tools.sh installs it)")
		}
		// containerd started on the config apply edited, as the node's
		// containerd restarts on it; config_path (set to configPath) points
		// under the test's root and images unpack to the native snapshotter
		// (test-side settings on a copy).
		edited, err := os.ReadFile(filepath.Join(root, "etc/containerd/config.toml"))
		must(t, err)
		startCRI := func(name, configPath string) func(args ...string) (string, error) {
			c := strings.NewReplacer(`"/etc/containerd/certs.d"`, strconv.Quote(configPath), `'overlayfs'`, `'native'`).Replace(string(edited))
			if b.configVersion == 2 {
				c += "\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"native\"\n"
			} else {
				c = "disabled_plugins = [\"io.containerd.nri.v1.nri\"]\n" + c // no NRI socket under /var/run
				c += fmt.Sprintf("\n[[plugins.\"io.containerd.transfer.v1.local\".unpack_config]]\n  platform = \"linux/%s\"\n  snapshotter = \"native\"\n", runtime.GOARCH)
			}
			cri := filepath.Join(dir, "cri-"+name)
			must(t, os.MkdirAll(cri, 0o755))
			must(t, os.WriteFile(filepath.Join(cri, "config.toml"), []byte(c), 0o644))
			criSock := filepath.Join(cri, "c.sock")
			clog := filepath.Join(dir, "containerd-cri-"+name+".log")
			startIn(t, node, clog, b.containerd, "--config", filepath.Join(cri, "config.toml"),
				"--root", filepath.Join(cri, "root"), "--state", filepath.Join(cri, "state"), "--address", criSock)
			run := func(args ...string) (string, error) {
				out, err := exec.Command("ip", append([]string{"netns", "exec", node, crictl, "--config", "/dev/null", "--runtime-endpoint", "unix://" + criSock, "--image-endpoint", "unix://" + criSock, "--timeout", "20s"}, args...)...).CombinedOutput()
				return string(out), err
			}
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				if _, err := run("images"); err == nil {
					return run
				}
				if time.Now().After(deadline) {
					l, _ := os.ReadFile(clog)
					t.Fatalf("containerd's CRI did not answer:\n%s", lastLines(string(l), 30))
				}
			}
		}
		crictlRun := startCRI("pinned", hostsDir)
		out, err := crictlRun("pull", "mcr.microsoft.com/oss/kubernetes/pause:3.6")
		if err != nil {
			clog, _ := os.ReadFile(filepath.Join(dir, "containerd-cri.log"))
			t.Fatalf("crictl pull through config_path: %v\n%s\n%s", err, out, lastLines(string(clog), 20))
		}
		t.Logf("crictl pull: %s", strings.TrimSpace(out))
		before := packets()
		out, err = crictlRun("pull", noRuleRegistry+"/other/img:1")
		if err == nil {
			t.Errorf("crictl pull %s/other/img:1 succeeded: %s", noRuleRegistry, out)
		}
		t.Logf("crictl pull without a rule: %s", lastLines(out, 1))
		if n := packets(); n != before {
			t.Errorf("nft counter to %s: %d → %d during the CRI pull, want no packet", noRuleRegistry, before, n)
		}
		if b.configVersion != 3 {
			return
		}
		// Why apply cuts a directory list: containerd 2's CRI pulls with its
		// transfer service, which reads "a:b" as one directory
		// (containerd#12636) and so reads neither hosts file nor _default.
		colon := startCRI("colon", hostsDir+":"+filepath.Join(dir, "docker-certs.d"))
		before = packets()
		out, _ = colon("pull", noRuleRegistry+"/other/img:1")
		n := packets()
		if n == before {
			t.Errorf("config_path %s:…: no packet to %s, want containerd 2 to go to the registry itself (containerd#12636 fixed? then apply need not cut the list)", hostsDir, noRuleRegistry)
		}
		t.Logf("containerd 2 CRI with config_path a:b: %d packets to %s (direct): %s", n-before, noRuleRegistry, lastLines(out, 1))
	})

	verify := func() (int, map[string]map[string]string) {
		cmd := exec.Command("ip", "netns", "exec", node, airlockBin, "verify", "--config", cfg, "--json", "--timeout", "1s")
		var stdout bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		var rep struct {
			Results []map[string]string `json:"results"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("verify --json: %v\n%s", err, stdout.Bytes())
		}
		rows := map[string]map[string]string{}
		for _, r := range rep.Results {
			rows[r["channel"]] = r
		}
		return code, rows
	}
	t.Run("verify passes", func(t *testing.T) {
		code, rows := verify()
		for _, ch := range []string{"containerd-config", "containerd-default", "containerd-sandbox", "registry-image"} {
			if rows[ch]["got"] != "reachable" {
				t.Errorf("verify %s = %s (%s), want reachable", ch, rows[ch]["got"], rows[ch]["evidence"])
			}
			t.Logf("%s: %s: %s", ch, rows[ch]["got"], rows[ch]["evidence"])
		}
		if code != 0 {
			t.Errorf("verify exit %d, want 0: %v", code, rows)
		}
	})

	t.Run("without _default: verify reports the fallback, and it is one", func(t *testing.T) {
		def := filepath.Join(hostsDir, "_default", "hosts.toml")
		saved, err := os.ReadFile(def)
		must(t, err)
		must(t, os.Remove(def))
		defer os.WriteFile(def, saved, 0o644)
		code, rows := verify()
		r := rows["containerd-default"]
		if code == 0 || r["got"] != "FAILED" || !strings.Contains(r["evidence"], "certs.d/_default/hosts.toml") {
			t.Errorf("verify without _default: exit %d, containerd-default = %s (%s); want a failing check naming the file", code, r["got"], r["evidence"])
		}
		t.Logf("verify exit %d, containerd-default: %s: %s", code, r["got"], r["evidence"])
		flows, before := gatewayFlows(t, gwHTTP), packets()
		out, _ := ctr("images", "pull", "--snapshotter", "native", "--hosts-dir", hostsDir, noRuleRegistry+"/other/img:1")
		t.Logf("pull without a rule and without _default: %s", lastLines(out, 2))
		n := packets() - before
		after := gatewayFlows(t, gwHTTP)
		if n == 0 || after == flows {
			t.Errorf("without _default: %d packets to %s, gateway flows %d → %d; want the direct attempt seen by both", n, noRuleRegistry, flows, after)
		}
		if l, _ := os.ReadFile(alog); !bytes.Contains(l, []byte(`"dst":"`+noRuleRegistry)) {
			t.Errorf("airlock's decision log does not name %s after the direct attempt (the check above would prove nothing)", noRuleRegistry)
		}
		t.Logf("without _default: nft counter to %s: %d packets; gateway flows %d → %d", noRuleRegistry, n, flows, after)
	})

	t.Run("reset restores config.toml and removes _default", func(t *testing.T) {
		if out, err := exec.Command("ip", "netns", "exec", node, airlockBin, "node", "reset", "--config", cfg).CombinedOutput(); err != nil {
			t.Fatalf("airlock node reset: %v\n%s", err, out)
		}
		if got, _ := os.ReadFile(filepath.Join(root, "etc/containerd/config.toml")); string(got) != nodeCfg {
			t.Errorf("config.toml after reset =\n%s\nwant the original", got)
		}
		if _, err := os.Stat(filepath.Join(hostsDir, "_default")); err == nil {
			t.Errorf("_default is left after reset")
		}
	})
}

// toolsBin is a binary scripts/tools.sh installs: $AIRLOCK_TOOLS/bin/name.
func toolsBin(name string) string {
	tools := os.Getenv("AIRLOCK_TOOLS")
	if tools == "" {
		tools = "/opt/airlock-tools"
	}
	return filepath.Join(tools, "bin", name)
}

// gatewayFlows sums airlock_egress_flows_total on the gateway's /metrics.
func gatewayFlows(t *testing.T, c *http.Client) int {
	t.Helper()
	resp, err := c.Get("http://" + pinGw + ":9090/metrics")
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	total := 0
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "airlock_egress_flows_total") {
			continue
		}
		f := strings.Fields(l)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		total += int(v)
	}
	return total
}

// pushedArtifact is what pushArtifact wrote: digests of its manifest and
// layer, and the layer's bytes.
type pushedArtifact struct {
	manifest, layer string
	layerData       []byte
}

// pushArtifact pushes an OCI artifact to repo:tag of the registry at base:
// an image manifest with its own artifactType, a config of its own media
// type and one layer.
func pushArtifact(t *testing.T, c *http.Client, base, repo, tag string) pushedArtifact {
	t.Helper()
	cfg := []byte(`{"tool":"airlock-e2e"}`)
	layer := []byte(`{"sbom":"airlock containerd e2e"}`)
	desc := func(mt string, b []byte) map[string]any {
		return map[string]any{"mediaType": mt, "digest": digestOf(b), "size": len(b)}
	}
	for _, blob := range [][]byte{cfg, layer} {
		resp, err := c.Post(base+"/v2/"+repo+"/blobs/uploads/", "", nil)
		must(t, err)
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if !strings.HasPrefix(loc, "http") {
			loc = base + loc
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		req, _ := http.NewRequest(http.MethodPut, loc+sep+"digest="+digestOf(blob), bytes.NewReader(blob))
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err = c.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("blob upload: %s", resp.Status)
		}
	}
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "artifactType": artifactType,
		"config": desc(artifactConfig, cfg), "layers": []any{desc("application/vnd.airlock.test.sbom.layer.v1+json", layer)},
	})
	req, _ := http.NewRequest(http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(m))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := c.Do(req)
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("manifest PUT: %s %s", resp.Status, b)
	}
	return pushedArtifact{manifest: digestOf(m), layer: digestOf(layer), layerData: layer}
}

func digestOf(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}
