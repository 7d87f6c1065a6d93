//go:build e2e

package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// isolated is the whole system of issue 6 on the isolation rig: inet holds
// the upstream registry (as mcr.microsoft.com), a resolver, web servers and
// the metadata address; gw runs `airlock serve`; node runs containerd and
// `airlock node`; pod is a pod's namespace behind the node.
type isolated struct {
	*isolationRig
	cfg     string // the one airlock.yaml of gw and node
	root    string // node.root: the node's files
	airlock *process
	ctrd    *containerd
	images  []string // image references seeded upstream
	art     artifact
	artRef  string
}

// isolationConfig is the airlock.yaml both sides use. outbound is the
// node's outbound type; allowedName is verify's positive target ("" for
// none: under block nothing but the registry and DNS is reachable).
func isolationConfig(r *isolationRig, root, outbound, allowedName string) string {
	return fmt.Sprintf(`version: 1
log: { format: json, level: info }
admin: { listen: "%[1]s:9090" }
registry:
  listen: "0.0.0.0:5000"
  storage: { path: %[2]q }
  anonymousPull: true
  cacheRules:
    - { name: aks-managed-mcr, sourceRepo: "mcr.microsoft.com/*", targetRepo: "aks-managed-repository/*" }
  upstreams: { mcr.microsoft.com: { url: "http://%[3]s:5000" } }
  upstreamTimeout: 5s
dns:
  listen: "0.0.0.0:53"
  forwarders: [ "%[4]s:53" ]
  logAllowed: all
gateway:
  transparentListen: "0.0.0.0:15001"
  l4Listen: "0.0.0.0:15002"
  allowedInternalRanges: [ "198.19.0.0/16" ]
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
            - { name: web, protocols: ["https:443", "http:80"], sourceAddresses: ["198.18.0.0/15"], targetFqdns: [allowed.test] }
node:
  root: %[5]q
  outboundType: %[6]s
  artifactSource: Cache
  sandboxImage: mcr.microsoft.com/oss/kubernetes/pause:3.6
  registry: "%[1]s:5000"
  gateway: %[1]s
  dns: "%[1]s:53"
  allowedAddresses: [ "198.18.20.0/24", "fdaa:20::/64" ]
verify:
  targets:
    deniedAddress: "%[7]s:443"
    deniedAddress6: "[%[8]s]:443"
    deniedName: denied.test
    allowedName: %[9]q
    outsideResolver: "%[4]s:53"
    metadataAddress: "%[10]s:80"
    dohURL: "https://%[7]s/dns-query"
    registryImage: "mcr.microsoft.com/%[11]s:%[12]s"
`, rigGwAddr, filepath.Join(r.dir, "registry"), inetRegistry, inetResolver, root, outbound,
		inetDenied, inetDenied6, allowedName, inetMetadata, pauseRepo, pauseTag)
}

// newIsolated builds the rig with every far-side server and airlock
// serving in gw; the node is not isolated yet.
func newIsolated(t *testing.T, outbound, allowedName string) *isolated {
	t.Helper()
	skipUnlessAirlock(t)
	r := newIsolationRig(t)
	s := &isolated{isolationRig: r, root: filepath.Join(r.dir, "node-root")}

	// The upstream: seeded on loopback, then served from inet.
	up := startUpstream(t)
	pause := buildMultiArch(t, 3600, 3, 1<<20)
	seedIndex(t, up, pauseRepo, pauseTag, pause.index)
	s.art = buildKubeNodeArtifact(t, 13114, 2<<20)
	seedArtifact(t, up, kubeNodeRep, kubeNodeTag, s.art)
	s.artRef = mcrHost + "/" + kubeNodeRep + ":" + kubeNodeTag
	s.images = []string{mcrHost + "/" + pauseRepo + ":" + pauseTag}
	moveRegistryInto(t, up, r.inet, inetRegistry+":5000")

	startUnboundIn(t, r.inet, inetResolver, []string{
		"allowed.test. 300 IN A " + inetAllowed,
		"denied.test. 300 IN A " + inetDenied,
		`denied.test. 300 IN TXT "secret"`,
	})
	webIn(t, r.inet, inetAllowed, "allowed.test")
	webIn(t, r.inet, inetDenied, "denied.test")
	webIn(t, r.inet, inetDenied6, "denied.test")
	webIn(t, r.inet, inetMetadata, "metadata")
	udpEchoIn(t, r.inet, inetDenied+":443", "quic")
	udpEchoIn(t, r.inet, "["+inetDenied6+"]:443", "quic6")

	// The node's files before airlock: a resolver and a containerd config
	// of its own, which reset must give back byte for byte.
	writeFile(t, mkdirFor(t, filepath.Join(s.root, "etc/resolv.conf")), "nameserver 198.18.21.99\n")
	writeFile(t, mkdirFor(t, filepath.Join(s.root, "etc/containerd/config.toml")), "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"mcr.microsoft.com/oss/v2/kubernetes/pause:3.6\"\n")

	s.cfg = filepath.Join(r.dir, "airlock.yaml")
	writeFile(t, s.cfg, isolationConfig(r, s.root, outbound, allowedName))
	s.airlock = startAirlockIn(t, r.gw, s.cfg, rigGwAddr+":9090")
	s.ctrd = startContainerdIn(t, r.node)
	return s
}

// moveRegistryInto stops docker-registry r (on loopback) and serves the same
// storage from namespace ns on addr. Stopped by PID at cleanup.
func moveRegistryInto(t testing.TB, r *registry, ns, addr string) {
	t.Helper()
	r.stop()
	cfg := filepath.Join(r.dir, "registry-netns.yml")
	writeFile(t, cfg, fmt.Sprintf("version: 0.1\nlog: {level: info, formatter: text}\nstorage:\n  filesystem: {rootdirectory: %q}\n  cache: {blobdescriptor: inmemory}\nhttp: {addr: %q}\nhealth: {storagedriver: {enabled: false}}\n", r.storage, addr))
	p := startProcess(t, "docker-registry", filepath.Join(r.dir, "registry-netns.log"), "ip", "netns", "exec", ns, "docker-registry", "serve", cfg)
	t.Cleanup(func() { p.stop(5 * time.Second) })
	err := waitFor(p, 20*time.Second, func() bool {
		ok := false
		netnstest.Do(t, ns, func() {
			if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
				c.Close()
				ok = true
			}
		})
		return ok
	})
	if err != nil {
		t.Fatalf("docker-registry in %s: %v\n%s", ns, err, p.logTail(20))
	}
}

func mkdirFor(t testing.TB, path string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// airlockIn runs the airlock binary with args in ns.
func (s *isolated) airlockIn(t testing.TB, ns string, args ...string) (string, int) {
	t.Helper()
	out, code := runIn(ns, 3*time.Minute, append([]string{needAirlock(t)}, args...)...)
	t.Logf("[%s] airlock %s → exit %d\n%s", ns, strings.Join(args, " "), code, tailLines(out, 400))
	return out, code
}

// nodeState is what reset must give back: every file under the node's
// root, the node's ruleset and its routes.
func (s *isolated) nodeState(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(p)
		sum := sha256.Sum256(data)
		rel, _ := filepath.Rel(s.root, p)
		fmt.Fprintf(&b, "file %s %s\n", rel, hex.EncodeToString(sum[:8]))
		return nil
	})
	out, _ := runIn(s.node, 10*time.Second, "nft", "list", "ruleset")
	b.WriteString("nft:\n" + out)
	for _, fam := range []string{"-4", "-6"} {
		out, _ = runIn(s.node, 10*time.Second, "ip", fam, "route", "show")
		b.WriteString("routes " + fam + ":\n" + out)
	}
	return b.String()
}

// runVerify runs verify in the node's namespace (and in pod when asPod)
// and returns its exit code and the rows.
func (s *isolated) runVerify(t testing.TB, asPod bool) (int, []map[string]any) {
	t.Helper()
	args := []string{"verify", "--config", s.cfg, "--json"}
	if asPod {
		args = append(args, "--netns", s.pod)
	}
	out, code := s.airlockIn(t, s.node, args...)
	return code, parseVerifyRows(t, out)
}

// parseVerifyRows finds the rows in verify's JSON, whatever the envelope.
func parseVerifyRows(t testing.TB, out string) []map[string]any {
	t.Helper()
	start := strings.IndexAny(out, "[{")
	if start < 0 {
		t.Fatalf("verify --json printed no JSON:\n%s", out)
	}
	var v any
	if err := json.NewDecoder(strings.NewReader(out[start:])).Decode(&v); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, out)
	}
	var rows []map[string]any
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			if _, ok := x["channel"]; ok {
				rows = append(rows, x)
				return
			}
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return rows
}

// leaked lists the channels verify reported as leaks.
func leaked(rows []map[string]any) []string {
	var out []string
	for _, r := range rows {
		if g, _ := r["got"].(string); strings.Contains(strings.ToLower(g), "leak") {
			out = append(out, fmt.Sprint(r["channel"]))
		} else if l, _ := r["leak"].(bool); l {
			out = append(out, fmt.Sprint(r["channel"]))
		}
	}
	sort.Strings(out)
	return out
}

// TestE2EIsolatedNodeBlock is issue 6's proof for outbound type block with
// the Cache artifact source: containerd in the node pulls AKS images and
// the kubelet artifact through airlock, verify finds no leak from the node
// or a pod, finds the leak when isolation is broken, flags exactly the one
// channel opened, and reset gives the node back.
func TestE2EIsolatedNodeBlock(t *testing.T) {
	s := newIsolated(t, "block", "")
	before := s.nodeState(t)

	out, code := s.airlockIn(t, s.node, "node", "apply", "--config", s.cfg, "--outbound-type", "block", "--artifact-source", "Cache")
	if code != 0 {
		t.Fatalf("airlock node apply: exit %d\n%s", code, out)
	}
	if out, code := s.airlockIn(t, s.node, "node", "status", "--config", s.cfg); code != 0 || !strings.Contains(out, "block") || !strings.Contains(out, "Cache") {
		t.Errorf("airlock node status: exit %d, want 0 naming block and Cache:\n%s", code, out)
	}
	hostsDir := filepath.Join(s.root, "etc/containerd/certs.d")

	t.Run("containerd pulls through airlock", func(t *testing.T) {
		for _, ref := range s.images {
			s.ctrd.mustCtr(t, "images", "pull", "--hosts-dir", hostsDir, ref)
		}
		s.ctrd.mustCtr(t, "content", "fetch", "--hosts-dir", hostsDir, s.artRef)
		have := s.ctrd.contentDigests(t)
		for d := range s.art.blobs {
			if !have[d] {
				t.Errorf("containerd lacks artifact blob %s after ctr content fetch", d)
			}
		}
	})

	t.Run("verify from the node and from a pod: no leak", func(t *testing.T) {
		for _, asPod := range []bool{false, true} {
			code, rows := s.runVerify(t, asPod)
			if l := leaked(rows); code != 0 || len(l) != 0 {
				t.Errorf("verify (pod=%v): exit %d, leaks %v; want exit 0 and none", asPod, code, l)
			}
			if len(rows) < 8 {
				t.Errorf("verify (pod=%v) reported %d rows, want one per channel (≥ 8)", asPod, len(rows))
			}
		}
	})

	t.Run("one channel opened: verify flags exactly it", func(t *testing.T) {
		table := nodeTable(t, s)
		netnstest.Exec(t, "ip", "netns", "exec", s.node, "nft", "insert", "rule", "inet", table, "output", "udp", "dport", "443", "accept")
		code, rows := s.runVerify(t, false)
		l := leaked(rows)
		if code != 1 || len(l) != 1 || !strings.Contains(strings.ToLower(l[0]), "udp") {
			t.Errorf("verify with udp/443 open: exit %d, leaks %v; want exit 1 and exactly the udp/443 channel", code, l)
		}
	})

	t.Run("isolation removed: verify reports the leaks", func(t *testing.T) {
		netnstest.Exec(t, "ip", "netns", "exec", s.node, "nft", "delete", "table", "inet", nodeTable(t, s))
		code, rows := s.runVerify(t, false)
		if l := leaked(rows); code != 1 || len(l) < 3 {
			t.Errorf("verify without the node's rules: exit %d, leaks %v; want exit 1 and the open channels", code, l)
		}
	})

	t.Run("reset gives the node back", func(t *testing.T) {
		if out, code := s.airlockIn(t, s.node, "node", "reset", "--config", s.cfg); code != 0 {
			t.Fatalf("airlock node reset: exit %d\n%s", code, out)
		}
		if after := s.nodeState(t); after != before {
			t.Errorf("node state after reset differs from before apply:\n--- before\n%s\n--- after\n%s", before, after)
		}
	})
}

// nodeTable is the name of airlock's nftables table in the node.
func nodeTable(t testing.TB, s *isolated) string {
	t.Helper()
	out := netnstest.Exec(t, "ip", "netns", "exec", s.node, "nft", "list", "tables")
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[1] == "inet" && strings.HasPrefix(f[2], "airlock") {
			return f[2]
		}
	}
	t.Fatalf("no airlock table in the node's ruleset:\n%s", out)
	return ""
}

// TestE2EIsolatedNodeUserDefinedRouting: the node's default route points at
// the gateway host, which intercepts with `airlock gateway rules`; an
// allowed FQDN over HTTPS works from the node with no proxy setting, a
// denied one does not, and verify finds no leak.
func TestE2EIsolatedNodeUserDefinedRouting(t *testing.T) {
	s := newIsolated(t, "userDefinedRouting", "allowed.test:443")
	if out, code := s.airlockIn(t, s.gw, "gateway", "rules", "--config", s.cfg); code != 0 {
		t.Fatalf("airlock gateway rules: exit %d\n%s", code, out)
	}
	before := s.nodeState(t)
	if out, code := s.airlockIn(t, s.node, "node", "apply", "--config", s.cfg); code != 0 {
		t.Fatalf("airlock node apply: exit %d\n%s", code, out)
	}

	t.Run("allowed FQDN over HTTPS, no proxy setting", func(t *testing.T) {
		addrs := lookupA(t, s.node, rigGwAddr+":53", "allowed.test.")
		if len(addrs) != 1 {
			t.Fatalf("allowed.test A = %v", addrs)
		}
		if got := httpsGet(t, s.node, addrs[0], "allowed.test"); got != "hello from allowed.test" {
			t.Errorf("GET https://allowed.test/ from the node = %q, want the allowed server's answer", got)
		}
	})
	t.Run("denied FQDN fails", func(t *testing.T) {
		if addrs := lookupA(t, s.node, rigGwAddr+":53", "denied.test."); len(addrs) != 0 {
			t.Errorf("airlock DNS answered denied.test with %v, want no address", addrs)
		}
		if got := httpsGet(t, s.node, inetDenied, "denied.test"); got != "" {
			t.Errorf("GET https://denied.test/ (straight to its address) from the node = %q, want nothing", got)
		}
	})
	t.Run("containerd pulls through airlock", func(t *testing.T) {
		s.ctrd.mustCtr(t, "images", "pull", "--hosts-dir", filepath.Join(s.root, "etc/containerd/certs.d"), s.images[0])
	})
	t.Run("verify from the node and from a pod: no leak", func(t *testing.T) {
		for _, asPod := range []bool{false, true} {
			code, rows := s.runVerify(t, asPod)
			if l := leaked(rows); code != 0 || len(l) != 0 {
				t.Errorf("verify (pod=%v): exit %d, leaks %v; want exit 0 and none", asPod, code, l)
			}
		}
	})
	t.Run("reset gives the node back", func(t *testing.T) {
		if out, code := s.airlockIn(t, s.node, "node", "reset", "--config", s.cfg); code != 0 {
			t.Fatalf("airlock node reset: exit %d\n%s", code, out)
		}
		if after := s.nodeState(t); after != before {
			t.Errorf("node state after reset differs from before apply:\n--- before\n%s\n--- after\n%s", before, after)
		}
	})
}

// httpsGet dials ip:443 from ns with SNI name (the test does not check the
// self-signed certificate; the body says which server answered) and returns
// the body, or "" when the connection failed or closed.
func httpsGet(t testing.TB, ns, ip, name string) string {
	t.Helper()
	var raw net.Conn
	var err error
	netnstest.Do(t, ns, func() { raw, err = net.DialTimeout("tcp", net.JoinHostPort(ip, "443"), 3*time.Second) })
	if err != nil {
		return ""
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	c := tls.Client(raw, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err := c.Handshake(); err != nil {
		return ""
	}
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", name)
	resp, _ := io.ReadAll(c)
	_, body, _ := strings.Cut(string(resp), "\r\n\r\n")
	return body
}
