//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/porttest"
)

// The cache rule every cache test uses: the one network isolated AKS
// clusters have (DESIGN §3).
const (
	mcrHost     = "mcr.microsoft.com"
	cacheTarget = "aks-managed-repository"
	cacheRule   = "aks-managed-mcr"
)

// cacheOptions configures an airlock whose registry is a pull-through
// cache of mcr.microsoft.com.
type cacheOptions struct {
	upstream        string        // URL mcr.microsoft.com is fetched from (http://127.0.0.1:PORT)
	tls             *certFiles    // serve HTTPS with this certificate
	upstreamTimeout time.Duration // default 3s
	tagTTL          time.Duration // default 5m
	uploadTTL       time.Duration // registry.uploadTTL; zero: airlock's default
	registryExtra   string        // more lines of the registry section (indented two spaces)
	extra           string        // more top-level sections (cluster: …)
	shareWith       *registry     // another replica: use its storage instead of a fresh one
}

// skipUnlessAirlock skips cache tests when the suite targets another registry.
func skipUnlessAirlock(t testing.TB) {
	t.Helper()
	if k := os.Getenv("E2E_TARGET"); k != "" && k != kindAirlock {
		t.Skip("airlock only: the pull-through cache tests need airlock's cacheRules")
	}
}

// startCacheAirlock runs `airlock serve` with the mcr cache rule, anonymous
// pull and no users, on a fresh storage directory (or container or bucket,
// see E2E_STORAGE).
func startCacheAirlock(t testing.TB, opts cacheOptions) *registry {
	t.Helper()
	bin := needAirlock(t)
	r := newRegistry(t, kindAirlock, regOptions{anonymousPull: true, tls: opts.tls})
	r.adminAddr = porttest.FreeAddr(t)
	r.bin = bin
	if o := opts.shareWith; o != nil {
		r.storage = o.storage
		if o.storageURL != "" {
			r.useObjectStorage(o.storageURL)
		}
	} else {
		r.useObjectStorage("")
	}
	r.writeCacheConfig(opts)
	r.args = []string{"serve", "--config", r.configPath}
	r.start()
	return r
}

// writeCacheConfig (re)writes airlock.yaml for opts, keeping the address,
// admin address and storage, so a restart serves the same cache.
func (r *registry) writeCacheConfig(opts cacheOptions) {
	if opts.upstreamTimeout == 0 {
		opts.upstreamTimeout = 3 * time.Second
	}
	if opts.tagTTL == 0 {
		opts.tagTTL = 5 * time.Minute
	}
	r.scheme, r.roots = "http", nil
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nlog: { format: json }\nadmin: { listen: %s }\nregistry:\n", r.adminAddr)
	fmt.Fprintf(&b, "  listen: %s\n", r.addr)
	if opts.tls != nil {
		r.scheme, r.roots = "https", opts.tls.roots
		fmt.Fprintf(&b, "  tls: { certFile: %q, keyFile: %q }\n", opts.tls.cert, opts.tls.key)
	}
	b.WriteString(r.storageYAML())
	b.WriteString("  anonymousPull: true\n")
	fmt.Fprintf(&b, "  cacheRules:\n    - { name: %s, sourceRepo: %q, targetRepo: %q }\n", cacheRule, mcrHost+"/*", cacheTarget+"/*")
	fmt.Fprintf(&b, "  upstreams: { %s: { url: %q, caFile: \"\" } }\n", mcrHost, opts.upstream)
	fmt.Fprintf(&b, "  upstreamTimeout: %s\n  tagTTL: %s\n", opts.upstreamTimeout, opts.tagTTL)
	if opts.uploadTTL != 0 {
		fmt.Fprintf(&b, "  uploadTTL: %s\n", opts.uploadTTL)
	}
	b.WriteString(opts.registryExtra)
	b.WriteString(opts.extra)
	r.writeConfig("airlock.yaml", b.String())
}

// startUpstream runs Debian's docker-registry as the upstream
// "mcr.microsoft.com": no auth, access log on (its default), on loopback.
func startUpstream(t testing.TB) *registry {
	t.Helper()
	return startDockerRegistry(t, regOptions{})
}

// upstreamURL is the endpoint override airlock gets for mcr.microsoft.com.
func (r *registry) upstreamURL() string { return "http://" + r.addr }

// accessLine is one request line of docker-registry's access log.
type accessLine struct {
	method, uri string
	status      int
	bytes       int64
}

// accessLogRE matches distribution's combined access log:
// 127.0.0.1 - - [date] "GET /v2/… HTTP/1.1" 200 1234 "" "agent"
var accessLogRE = regexp.MustCompile(`^\S+ - \S+ \[[^\]]*\] "([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3}) (\d+|-)`)

// accessLog reads every log docker-registry wrote (one file per start).
func (r *registry) accessLog(t testing.TB) []accessLine {
	t.Helper()
	var out []accessLine
	for i := 1; i <= r.starts; i++ {
		f, err := os.Open(filepath.Join(r.dir, fmt.Sprintf("%s-%d.log", r.kind, i)))
		if err != nil {
			t.Fatalf("upstream access log: %v", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			m := accessLogRE.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			status, _ := strconv.Atoi(m[3])
			n, _ := strconv.ParseInt(m[4], 10, 64)
			out = append(out, accessLine{method: m[1], uri: m[2], status: status, bytes: n})
		}
		f.Close()
	}
	return out
}

// blobGETs counts the upstream's GET /v2/<repo>/blobs/<digest> lines by
// digest (any status; a GET is an upstream fetch whatever came of it).
func (r *registry) blobGETs(t testing.TB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, l := range r.accessLog(t) {
		if l.method != http.MethodGet {
			continue
		}
		path, _, _ := strings.Cut(l.uri, "?")
		if _, d, ok := strings.Cut(path, "/blobs/"); ok && strings.HasPrefix(path, "/v2/") {
			out[d]++
		}
	}
	return out
}

// waitBlobGETs waits until the upstream logged at least one GET for every
// digest in want (a line is written when its response ends, a moment after
// the client read the last byte), then a little longer for stragglers, and
// returns the counts.
func (r *registry) waitBlobGETs(t testing.TB, want []string) map[string]int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := r.blobGETs(t)
		missing := 0
		for _, d := range want {
			if got[d] == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			time.Sleep(300 * time.Millisecond)
			return r.blobGETs(t)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requestLine is one "request" record of airlock's JSON log.
type requestLine struct {
	Msg    string `json:"msg"`
	Method string `json:"method"`
	Route  string `json:"route"`
	Repo   string `json:"repo"`
	Status int    `json:"status"`
	Bytes  int64  `json:"bytes"`
}

// airlockRequests returns every request airlock logged, over all starts,
// in order.
func (r *registry) airlockRequests(t testing.TB) []requestLine {
	t.Helper()
	var out []requestLine
	for i := 1; i <= r.starts; i++ {
		b, err := os.ReadFile(filepath.Join(r.dir, fmt.Sprintf("%s-%d.log", r.kind, i)))
		if err != nil {
			t.Fatalf("airlock log: %v", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			var l requestLine
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "request" {
				out = append(out, l)
			}
		}
	}
	return out
}

// airlockLogContains reports whether any airlock log line contains s.
func (r *registry) airlockLogContains(t testing.TB, s string) bool {
	t.Helper()
	for i := 1; i <= r.starts; i++ {
		b, err := os.ReadFile(filepath.Join(r.dir, fmt.Sprintf("%s-%d.log", r.kind, i)))
		if err != nil {
			t.Fatalf("airlock log: %v", err)
		}
		if strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}

// scrapeMetrics returns airlock's admin /metrics text.
func (r *registry) scrapeMetrics(t testing.TB) string {
	t.Helper()
	resp, err := http.Get("http://" + r.adminAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d, %v", resp.StatusCode, err)
	}
	return string(b)
}

// metricSample sums every sample of name in a Prometheus text exposition
// whose label set contains each of labels (e.g. `kind="blob"`). found is
// false when there is none (a counter vector shows a label set only once
// it was used).
func metricSample(text, name string, labels ...string) (sum float64, found bool) {
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metricName, labelSet, _ := strings.Cut(series, "{")
		if metricName != name {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(labelSet, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// metric is the current value of name{labels} on airlock; 0 when the
// series has no sample yet.
func (r *registry) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, _ := metricSample(r.scrapeMetrics(t), name, labels...)
	return v
}

// cacheMetrics renders the airlock_cache_* counters tests print.
func (r *registry) cacheMetrics(t testing.TB) string {
	t.Helper()
	text := r.scrapeMetrics(t)
	var parts []string
	for _, m := range []struct{ name, label string }{
		{"airlock_cache_hits_total", `kind="blob"`},
		{"airlock_cache_misses_total", `kind="blob"`},
		{"airlock_cache_coalesced_waiters_total", `kind="blob"`},
		{"airlock_cache_hits_total", `kind="manifest"`},
		{"airlock_cache_misses_total", `kind="manifest"`},
	} {
		v, _ := metricSample(text, m.name, m.label)
		parts = append(parts, fmt.Sprintf("%s{%s}=%g", strings.TrimPrefix(m.name, "airlock_cache_"), m.label, v))
	}
	for _, n := range []string{"airlock_cache_upstream_bytes_total", "airlock_cache_stale_serves_total", "airlock_cache_verification_failures_total"} {
		v, _ := metricSample(text, n)
		parts = append(parts, fmt.Sprintf("%s=%g", strings.TrimPrefix(n, "airlock_cache_"), v))
	}
	return strings.Join(parts, " ")
}

// storageTmpFiles lists the regular files under airlock's storage tmp
// directory (each open store writes in a directory of its own there), by
// path relative to it.
func storageTmpFiles(t testing.TB, storage string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	dir := filepath.Join(storage, "tmp")
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // gone meanwhile (or no tmp at all)
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			rel, _ := filepath.Rel(dir, path)
			out[rel] = info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sortedCounts renders digest counts in a stable order for t.Logf.
func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", shortDigest(k), m[k])
	}
	return b.String()
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
