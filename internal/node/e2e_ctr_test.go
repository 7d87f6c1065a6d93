//go:build e2e

package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
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

// nsDial dials from inside network namespace ns (the socket is made on a
// thread switched into it, and stays there).
func nsDial(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		var err error
		if nerr := netnstest.Run(ns, func() {
			c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
		}); nerr != nil {
			return nil, nerr
		}
		return c, err
	}
}

// startIn starts a daemon inside ns with its output in log; it is stopped
// (by its PID) when the test ends.
func startIn(t *testing.T, ns, log string, args ...string) {
	t.Helper()
	proctest.StartLog(t, log, exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...))
}

func waitHTTP(t *testing.T, c *http.Client, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not up: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestE2ENodeContainerdPullsThroughAirlock: the hosts.toml and
// config.toml node apply writes make the real containerd 1.6 (ctr, with the
// certs.d directory apply chose) fetch mcr.microsoft.com content from the
// airlock registry, whose cache rule fills from a docker-registry upstream
// — over HTTP, then over TLS with node.registryCAFile; a missing tag fails
// without containerd trying the real upstream. Everything runs in a network
// namespace with only loopback, so a fallback could not leave it.
func TestE2ENodeContainerdPullsThroughAirlock(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespace, containerd)")
	}
	for _, bin := range []string{"containerd", "ctr", "docker-registry", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (scripts/deps.sh installs it)", bin)
		}
	}
	dir, err := os.MkdirTemp("", "alxn-ctr-") // short: containerd's socket path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var b [3]byte
	rand.Read(b[:])
	ns := "alxn-c-" + hex.EncodeToString(b[:])
	netnstest.Add(t, ns)

	airlockBin := e2eAirlockBin(t, dir)

	// Upstream "mcr.microsoft.com": docker-registry on 127.0.0.1:5001.
	digest := pushPause(t, startUpstream(t, ns, dir, "delete: {enabled: true}"))

	// containerd with a private root; ctr runs in the namespace too.
	ctr := containerdtest.Start(t, containerdtest.Options{Dir: filepath.Join(dir, "ctrd"), Log: filepath.Join(dir, "containerd.log"),
		Netns: ns, Namespace: "alxn", Wait: 20 * time.Second}).Ctr

	ca := newCA(t, dir)
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"http", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fmt.Sprintf(`version: 1
registry:
  listen: 127.0.0.1:5000
  storage: { path: %q }
  anonymousPull: true
  cacheRules:
    - { name: aks-managed-mcr, sourceRepo: "mcr.microsoft.com/*", targetRepo: "aks-managed-repository/*" }
  upstreams: { mcr.microsoft.com: { url: "http://127.0.0.1:5001" } }
  upstreamTimeout: 5s
`, filepath.Join(dir, "airlock-"+tc.name))
			scheme := "http"
			if tc.tls {
				cfg = strings.Replace(cfg, "  storage:", fmt.Sprintf("  tls: { certFile: %q, keyFile: %q }\n  storage:", ca.cert, ca.key), 1)
				scheme = "https"
			}
			cfgPath := filepath.Join(dir, "airlock-"+tc.name+".yaml")
			must(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
			runCtx, stop := context.WithCancel(context.Background())
			t.Cleanup(stop)
			startIn(t, ns, filepath.Join(dir, "airlock-"+tc.name+".log"), airlockBin, "serve", "--config", cfgPath)
			probe := &http.Client{Transport: &http.Transport{DialContext: nsDial(ns), TLSClientConfig: ca.clientConfig()}, Timeout: 5 * time.Second}
			waitHTTP(t, probe, scheme+"://127.0.0.1:5000/v2/")

			// node apply (outboundType none: no packet rules; nft runs in
			// the namespace anyway) writes config.toml and hosts.toml.
			root := filepath.Join(dir, "root-"+tc.name)
			in := Input{Config: Config{OutboundType: OutboundNone, ArtifactSource: SourceCache, Registry: Addresses{"127.0.0.1:5000"}},
				CacheRules: []CacheRule{{SourceRepo: "mcr.microsoft.com/*", TargetRepo: "aks-managed-repository/*"}}, RegistryTLS: tc.tls}
			if tc.tls {
				in.Config.RegistryCAFile = ca.caFile
			}
			in.Config.SetDefaults()
			in.Config.SandboxImage = "mcr.microsoft.com/oss/kubernetes/pause:3.6"
			res, err := New(root, nsRunner{ns}, nil).Apply(runCtx, in)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			hostsDir := filepath.Join(root, res.State.CertsDir)
			hosts, _ := os.ReadFile(filepath.Join(hostsDir, "mcr.microsoft.com/hosts.toml"))
			t.Logf("hosts.toml:\n%s", hosts)

			out, err := ctr("content", "fetch", "--hosts-dir", hostsDir, "--http-trace", "mcr.microsoft.com/oss/kubernetes/pause:3.6")
			if err != nil {
				t.Fatalf("ctr content fetch: %v\n%s", err, out)
			}
			got, err := ctr("images", "ls", "-q")
			if err != nil || !strings.Contains(got, "mcr.microsoft.com/oss/kubernetes/pause:3.6") {
				t.Errorf("ctr images ls = %q %v, want the fetched image", got, err)
			}
			if m, err := ctr("content", "get", digest.String()); err != nil || len(m) == 0 {
				t.Errorf("ctr content get %s (the manifest) = %v, want the fetched manifest", digest, err)
			}
			alog, _ := os.ReadFile(filepath.Join(dir, "airlock-"+tc.name+".log"))
			if !strings.Contains(string(alog), "aks-managed-repository/oss/kubernetes/pause") {
				t.Errorf("airlock log has no request for aks-managed-repository/oss/kubernetes/pause (override_path not used?):\n%.3000s", alog)
			}
			if strings.Contains(out, "Host: mcr.microsoft.com") || strings.Contains(out, "//mcr.microsoft.com") {
				t.Errorf("ctr went to the real upstream:\n%s", out)
			}

			// A tag airlock cannot serve: containerd must fail without
			// trying mcr.microsoft.com itself.
			out, err = ctr("content", "fetch", "--hosts-dir", hostsDir, "--http-trace", "mcr.microsoft.com/oss/kubernetes/pause:missing")
			if err == nil {
				t.Errorf("ctr content fetch of a missing tag succeeded:\n%s", out)
			}
			if strings.Contains(out, "mcr.microsoft.com/v2") || strings.Contains(out, "Host: mcr.microsoft.com") {
				t.Errorf("after airlock's 404 ctr fell back to the real upstream:\n%s", out)
			}
			t.Logf("missing tag: %s", lastLines(out, 3))
			if !tc.tls {
				// The contrast: a hosts.toml whose server names the upstream
				// (here the loopback stand-in 127.0.0.1:5001) is a fallback.
				alt := filepath.Join(dir, "alt-certs.d")
				must(t, os.MkdirAll(filepath.Join(alt, "mcr.microsoft.com"), 0o755))
				must(t, os.WriteFile(filepath.Join(alt, "mcr.microsoft.com/hosts.toml"), []byte(`server = "http://127.0.0.1:5001"
[host."http://127.0.0.1:5000/v2/aks-managed-repository"]
  capabilities = ["pull", "resolve"]
  override_path = true
`), 0o644))
				out, _ = ctr("content", "fetch", "--hosts-dir", alt, "mcr.microsoft.com/oss/kubernetes/pause:missing")
				if !strings.Contains(out, `host="127.0.0.1:5001"`) && !strings.Contains(out, "127.0.0.1:5001") {
					t.Errorf("with server = the upstream, ctr did not try it after airlock's 404 (the reason hosts.toml names airlock twice):\n%s", out)
				}
				t.Logf("server = upstream: %s", lastLines(out, 2))
			}
			ctr("images", "rm", "--sync", "mcr.microsoft.com/oss/kubernetes/pause:3.6")
		})
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

type testCA struct {
	cert, key, caFile string
	pool              *x509.CertPool
}

func (c *testCA) clientConfig() *tls.Config { return &tls.Config{RootCAs: c.pool} }

// newCA makes a CA and a server certificate for 127.0.0.1 signed by it.
func newCA(t *testing.T, dir string) *testCA {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "alxn test CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(t, err)
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "airlock registry"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	must(t, err)
	kb, _ := x509.MarshalECPrivateKey(key)
	ca := &testCA{cert: filepath.Join(dir, "server.crt"), key: filepath.Join(dir, "server.key"), caFile: filepath.Join(dir, "ca.crt"), pool: x509.NewCertPool()}
	ca.pool.AddCert(caCert)
	must(t, os.WriteFile(ca.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	must(t, os.WriteFile(ca.key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	must(t, os.WriteFile(ca.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644))
	return ca
}
