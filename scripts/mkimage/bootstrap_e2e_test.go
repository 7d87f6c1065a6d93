//go:build e2e

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/containerdtest"
	"github.com/airlockdev/airlock/internal/testkit/netnstest"
	"github.com/airlockdev/airlock/internal/testkit/proctest"
)

// TestE2EAgentImagePullsThroughAirlock is the bootstrap path "the agent's
// image pulled through airlock via hosts.toml written at boot": the image
// lives at its upstream (ghcr.io, played by a docker-registry on loopback),
// `airlock node apply --artifact-source Cache` writes containerd's
// hosts.toml as a boot script would, and Debian's containerd pulls
// ghcr.io/airlockdev/airlock through the airlock cache, both platforms,
// under the digest the build gave. Everything runs in a network namespace
// with only loopback, so no pull could reach the real ghcr.io.
func TestE2EAgentImagePullsThroughAirlock(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespace, containerd)")
	}
	for _, bin := range []string{"containerd", "ctr", "docker-registry", "ip", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (scripts/deps.sh installs it)", bin)
		}
	}
	src, err := filepath.Abs("../..")
	must(t, err)
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "mkboot-") // short: containerd's socket path
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Getenv("SOURCE_DATE_EPOCH") == "" {
		if _, err := sourceDateEpoch(ctx, src); err != nil {
			t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
		}
	}
	res, err := build(ctx, buildOptions{Out: filepath.Join(dir, "image"), Platforms: []string{"linux/amd64", "linux/arm64"},
		Version: "boot", CAFile: "/etc/ssl/certs/ca-certificates.crt", Src: src}, io.Discard)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	airlockBin := filepath.Join(dir, "airlock")
	if out, err := exec.Command("go", "build", "-o", airlockBin, "../../cmd/airlock").CombinedOutput(); err != nil {
		t.Fatalf("go build airlock: %v\n%s", err, out)
	}

	var b [3]byte
	rand.Read(b[:])
	ns := "almk-" + hex.EncodeToString(b[:])
	netnstest.Add(t, ns)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		var err error
		if nerr := netnstest.Run(ns, func() { c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr) }); nerr != nil {
			return nil, nerr
		}
		return c, err
	}}}

	// The upstream "ghcr.io": docker-registry on 127.0.0.1:5001 in the namespace, holding the image.
	must(t, os.WriteFile(filepath.Join(dir, "upstream.yml"), fmt.Appendf(nil, `version: 0.1
log: {level: info, formatter: text}
storage: {filesystem: {rootdirectory: %s/upstream}}
http: {addr: 127.0.0.1:5001}
`, dir), 0o644))
	inNS(t, ns, filepath.Join(dir, "upstream.log"), "docker-registry", "serve", filepath.Join(dir, "upstream.yml"))
	waitNS(t, hc, "http://127.0.0.1:5001/v2/")
	if _, err := push(ctx, pushOptions{Layout: filepath.Join(dir, "image"), To: "127.0.0.1:5001/airlockdev/airlock:boot", transport: hc.Transport}); err != nil {
		t.Fatalf("push to the upstream: %v", err)
	}

	// airlock: a pull-through cache of ghcr.io (and registry.k8s.io, which
	// the node's sandbox image needs a rule for).
	cfg := filepath.Join(dir, "airlock.yaml")
	must(t, os.WriteFile(cfg, fmt.Appendf(nil, `version: 1
registry:
  listen: 127.0.0.1:5000
  storage: { path: %s }
  anonymousPull: true
  cacheRules:
    - { name: ghcr, sourceRepo: "ghcr.io/*", targetRepo: "ghcr.io/*" }
    - { name: registry-k8s, sourceRepo: "registry.k8s.io/*", targetRepo: "registry.k8s.io/*" }
  upstreams: { ghcr.io: { url: "http://127.0.0.1:5001" } }
  upstreamTimeout: 5s
node:
  outboundType: none
  artifactSource: Cache
  registry: ["127.0.0.1:5000"]
  runtimes: [containerd]
  resolver: none
`, filepath.Join(dir, "registry")), 0o644))
	inNS(t, ns, filepath.Join(dir, "airlock.log"), airlockBin, "serve", "--config", cfg)
	waitNS(t, hc, "http://127.0.0.1:5000/v2/")

	// "At boot": node apply writes containerd's hosts.toml under a root.
	root := filepath.Join(dir, "root")
	if out, err := exec.Command("ip", "netns", "exec", ns, airlockBin, "node", "apply", "--config", cfg, "--root", root).CombinedOutput(); err != nil {
		t.Fatalf("airlock node apply: %v\n%s", err, out)
	}
	hostsDir := filepath.Join(root, "etc/containerd/certs.d")
	hosts, err := os.ReadFile(filepath.Join(hostsDir, "ghcr.io/hosts.toml"))
	must(t, err)
	t.Logf("ghcr.io/hosts.toml:\n%s", hosts)

	// Debian's containerd in the namespace, private root, state and socket.
	ctr := containerdtest.Start(t, containerdtest.Options{Dir: filepath.Join(dir, "ctrd"), Log: filepath.Join(dir, "containerd.log"),
		Netns: ns, Namespace: "boot"}).Ctr
	const ref = "ghcr.io/airlockdev/airlock:boot"
	if out, err := ctr("images", "pull", "--hosts-dir", hostsDir, "--all-platforms", ref); err != nil {
		t.Fatalf("ctr images pull %s through airlock: %v\n%s", ref, err, out)
	}
	ls, err := ctr("images", "ls")
	if err != nil || !strings.Contains(ls, ref) || !strings.Contains(ls, res.Index.String()) {
		t.Fatalf("ctr images ls = %v\n%s\nwant %s at %s", err, ls, ref, res.Index)
	}
	t.Logf("ctr images ls:\n%s", ls)
	alog, _ := os.ReadFile(filepath.Join(dir, "airlock.log"))
	if !strings.Contains(string(alog), "ghcr.io/airlockdev/airlock") {
		t.Errorf("airlock's log has no request for ghcr.io/airlockdev/airlock: the pull did not go through it:\n%.2000s", alog)
	}
}

// inNS starts a daemon inside ns with its output in log; stopped by PID.
func inNS(t *testing.T, ns, log string, args ...string) {
	t.Helper()
	proctest.Daemon(t, log, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

func waitNS(t *testing.T, c *http.Client, url string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (in the namespace) not up: %v", url, err)
		}
	}
}
