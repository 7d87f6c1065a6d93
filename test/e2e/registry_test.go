//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/testkit/porttest"
	"golang.org/x/crypto/bcrypt"
)

const (
	kindAirlock        = "airlock"
	kindDockerRegistry = "docker-registry"
)

// regOptions configures a registry under test.
type regOptions struct {
	// anonymousPull lets clients without credentials pull (airlock only;
	// docker-registry with users requires them for every request).
	anonymousPull bool
	// users maps user name to password. The first in name order becomes
	// registry.user/password.
	users map[string]string
	// tls serves HTTPS with this certificate (airlock only).
	tls *certFiles
	// storageURL puts airlock's content at this object storage URL (a
	// second airlock on the same container or bucket) instead of a fresh
	// one; used only with E2E_STORAGE set.
	storageURL string
	// redirect sets registry.storage.redirect (object storage only).
	redirect bool
	// uploadTTL sets registry.uploadTTL (zero: airlock's default).
	uploadTTL time.Duration
}

// registry is one registry server under test, on 127.0.0.1.
type registry struct {
	t          testing.TB
	kind       string
	dir        string // configs and logs
	storage    string // storage directory, kept across restarts
	addr       string // 127.0.0.1:PORT of the registry API
	adminAddr  string // airlock's admin listener
	scheme     string // http or https
	user       string
	password   string
	roots      *x509.CertPool // trusted roots for https
	configPath string
	bin        string
	args       []string
	proc       *process
	starts     int

	// Object storage (E2E_STORAGE, or regOptions.storageURL) instead of
	// the storage directory.
	storageURL string         // kept across restarts
	scratch    string         // local scratch directory for cache fills
	redirect   bool           // registry.storage.redirect
	env        []string       // credentials (KEY=value) for the process
	drv        storage.Driver // the test's own view, opened by driver()
}

// startTarget starts the registry the registry-agnostic tests run against:
// airlock, or docker-registry when E2E_TARGET=docker-registry.
func startTarget(t testing.TB, opts regOptions) *registry {
	t.Helper()
	switch k := os.Getenv("E2E_TARGET"); k {
	case "", kindAirlock:
		return startAirlock(t, opts)
	case kindDockerRegistry:
		return startDockerRegistry(t, opts)
	default:
		t.Fatalf("E2E_TARGET=%q, want airlock or docker-registry", k)
		return nil
	}
}

// startAirlock writes an airlock config for opts and runs `airlock serve`.
func startAirlock(t testing.TB, opts regOptions) *registry {
	t.Helper()
	bin := needAirlock(t)
	r := newRegistry(t, kindAirlock, opts)
	r.adminAddr = porttest.FreeAddr(t)
	r.redirect = opts.redirect
	r.useObjectStorage(opts.storageURL)
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nlog: { format: json }\nadmin: { listen: %s }\nregistry:\n", r.adminAddr)
	fmt.Fprintf(&b, "  listen: %s\n", r.addr)
	if opts.tls != nil {
		fmt.Fprintf(&b, "  tls: { certFile: %q, keyFile: %q }\n", opts.tls.cert, opts.tls.key)
	}
	b.WriteString(r.storageYAML())
	fmt.Fprintf(&b, "  anonymousPull: %t\n", opts.anonymousPull)
	if opts.uploadTTL != 0 {
		fmt.Fprintf(&b, "  uploadTTL: %s\n", opts.uploadTTL)
	}
	if len(opts.users) > 0 {
		b.WriteString("  users:\n")
		for _, name := range sortedKeys(opts.users) {
			fmt.Fprintf(&b, "    - { name: %s, passwordHash: %q }\n", name, bcryptHash(t, opts.users[name]))
		}
	}
	r.writeConfig("airlock.yaml", b.String())
	r.bin, r.args = bin, []string{"serve", "--config", r.configPath}
	r.start()
	return r
}

// startDockerRegistry runs Debian's docker-registry (distribution 2.8) with
// delete enabled and, when opts has users, htpasswd auth.
func startDockerRegistry(t testing.TB, opts regOptions) *registry {
	t.Helper()
	if opts.tls != nil {
		t.Fatal("startDockerRegistry: tls is not supported by this harness")
	}
	r := newRegistry(t, kindDockerRegistry, opts)
	var b strings.Builder
	b.WriteString("version: 0.1\nlog: {level: info, formatter: text}\n")
	fmt.Fprintf(&b, "storage:\n  filesystem: {rootdirectory: %q}\n  delete: {enabled: true}\n", r.storage)
	b.WriteString("  cache: {blobdescriptor: inmemory}\n  maintenance: {uploadpurging: {enabled: false}}\n")
	fmt.Fprintf(&b, "http: {addr: %q}\nhealth: {storagedriver: {enabled: false}}\n", r.addr)
	if len(opts.users) > 0 {
		var h strings.Builder
		for _, name := range sortedKeys(opts.users) {
			fmt.Fprintf(&h, "%s:%s\n", name, bcryptHash(t, opts.users[name]))
		}
		hp := filepath.Join(r.dir, "htpasswd")
		if err := os.WriteFile(hp, []byte(h.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "auth:\n  htpasswd: {realm: e2e, path: %q}\n", hp)
	}
	r.writeConfig("registry.yml", b.String())
	r.bin, r.args = "docker-registry", []string{"serve", r.configPath}
	r.start()
	return r
}

func newRegistry(t testing.TB, kind string, opts regOptions) *registry {
	dir := t.TempDir()
	r := &registry{
		t: t, kind: kind, dir: dir,
		storage: filepath.Join(dir, "storage"),
		addr:    porttest.FreeAddr(t),
		scheme:  "http",
	}
	if opts.tls != nil {
		r.scheme = "https"
		r.roots = opts.tls.roots
	}
	if names := sortedKeys(opts.users); len(names) > 0 {
		r.user, r.password = names[0], opts.users[names[0]]
	}
	t.Cleanup(func() {
		if t.Failed() && r.proc != nil {
			t.Logf("%s log (last lines):\n%s", r.kind, r.proc.logTail(40))
		}
		r.stop()
	})
	return r
}

func (r *registry) writeConfig(name, content string) {
	r.configPath = filepath.Join(r.dir, name)
	if err := os.WriteFile(r.configPath, []byte(content), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// start launches the server with its current config and storage and waits
// until it is ready: /readyz on the admin listener for airlock, /v2/ for
// docker-registry.
func (r *registry) start() {
	r.t.Helper()
	r.starts++
	logPath := filepath.Join(r.dir, fmt.Sprintf("%s-%d.log", r.kind, r.starts))
	r.proc = startProcessEnv(r.t, r.kind, logPath, r.env, r.bin, r.args...)
	hc := &http.Client{Timeout: time.Second}
	ready := func() bool {
		var u string
		if r.kind == kindAirlock {
			u = "http://" + r.adminAddr + "/readyz"
		} else {
			u = r.url("/v2/")
		}
		resp, err := hc.Get(u)
		if err != nil {
			return false
		}
		resp.Body.Close()
		if r.kind == kindAirlock {
			return resp.StatusCode == http.StatusOK
		}
		return resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized
	}
	if err := waitFor(r.proc, 30*time.Second, ready); err != nil {
		r.t.Fatalf("start %s: %v\nlog:\n%s", r.kind, err, r.proc.logTail(40))
	}
}

// stop sends SIGTERM (SIGKILL after 15 s). For airlock the contract is a
// drain and exit status 0; anything else fails the test.
func (r *registry) stop() {
	if r.proc == nil || r.proc.exited() {
		return
	}
	killed, err := r.proc.stop(15 * time.Second)
	if r.kind != kindAirlock {
		return
	}
	if killed {
		r.t.Errorf("airlock (pid %d) ignored SIGTERM for 15s; killed", r.proc.pid())
	} else if err != nil {
		r.t.Errorf("airlock (pid %d) after SIGTERM: %v, want exit status 0", r.proc.pid(), err)
	}
}

// kill sends SIGKILL: a crash.
func (r *registry) kill() { r.proc.kill() }

// restart stops the server (SIGTERM) and starts it on the same storage.
func (r *registry) restart() {
	r.t.Helper()
	r.stop()
	r.start()
}

func (r *registry) url(path string) string { return r.scheme + "://" + r.addr + path }

// client returns an HTTP client that trusts the registry's CA (https) and
// never follows redirects, so every status is seen as sent.
func (r *registry) client() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if r.roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: r.roots}
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       5 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func bcryptHash(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatalf("bcrypt: %v", err)
	}
	return string(h)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
