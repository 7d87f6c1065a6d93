//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/miekg/dns"
	"gopkg.in/yaml.v3"

	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/testkit/porttest"
)

// The names the console test's policy decides: a deny rule for one, no
// rule for the other (no_match), so the learned policy has something to
// propose.
const (
	consoleBlocked  = "blocked.example.test"
	consoleUnlisted = "unlisted.example.test"
	consoleDenyRule = "block-example"
	consoleDNSName  = "dns-only.example.test"
	consoleRepo     = "oss/v2/kubernetes/pause"
	consoleTag      = "3.10"
)

// TestE2EConsole drives the console with Debian's headless Chromium against
// a real airlock: a gateway proxy and DNS on loopback with a small policy
// and a registry caching a loopback docker-registry. Every page loads
// without a console error; a denied CONNECT shows in the live view; explain
// names the deciding rule; "allow this" and the learned YAML pass `airlock
// policy check`, and "allow this" writes the rule learn proposes.
// Screenshots go to $E2E_ARTIFACTS (else a temp dir, logged) and, with
// E2E_UPDATE_SCREENSHOTS=1, to docs/img/console-*.png.
func TestE2EConsole(t *testing.T) {
	skipUnlessAirlock(t)
	chromium := needChromium(t)
	bin := needAirlock(t)

	// An echo server the policy allows, so the overview and the policy
	// have an allow and a rule hit.
	echo := startEcho(t)
	up := startUpstream(t)
	img := buildImage(t, "amd64", 1410, 2, 256<<10)
	seedImage(t, up, consoleRepo, consoleTag, img)
	proxy, dnsAddr := porttest.FreeAddr(t), porttest.FreeAddr(t)
	// The forwarder is a loopback port nobody serves: the only question
	// asked is one the policy denies, which is never forwarded.
	extra := fmt.Sprintf(`gateway: { proxyListen: %q, allowedInternalRanges: ["127.0.0.0/8"] }
dns: { listen: %q, forwarders: [%q] }
policy:
  ruleCollectionGroups:
    - name: console
      priority: 100
      ruleCollections:
        - { name: local, type: network, priority: 100, action: allow, rules: [ { name: echo, protocols: [TCP], sourceAddresses: ["127.0.0.0/8"], destinationAddresses: ["127.0.0.1/32"], destinationPorts: ["%d"] } ] }
        - { name: blocked, type: application, priority: 200, action: deny, rules: [ { name: %s, protocols: ["https:443"], sourceAddresses: ["*"], targetFqdns: [%q] } ] }
        - name: partners
          type: application
          priority: 300
          action: allow
          rules:
            - { name: never-used, protocols: ["https:443"], sourceAddresses: ["10.0.0.0/8"], targetFqdns: ["partner.example.test"] }
            - { name: aks, sourceAddresses: ["10.224.0.0/16"], fqdnTags: ["AzureKubernetesService"] }
`, proxy, dnsAddr, porttest.FreeAddr(t), echo.Addr().(*net.TCPAddr).Port, consoleDenyRule, consoleBlocked)
	al := startCacheAirlock(t, cacheOptions{upstream: up.upstreamURL(), extra: extra})
	base := "http://" + al.adminAddr

	// Traffic before the browser opens: two pulls through the cache, an
	// allowed tunnel, a no_match deny and a denied DNS question.
	ref, err := name.ParseReference(al.addr+"/"+cacheTarget+"/"+consoleRepo+":"+consoleTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	for i := range 2 { // a cold pull, then one from the cache: hits and misses
		if _, err := pullAndVerify(ref, want, remote.WithTransport(al.client().Transport)); err != nil {
			t.Fatalf("pull %d through the cache: %v", i+1, err)
		}
	}
	if status := proxyConnect(t, proxy, echo.Addr().String()); !strings.Contains(status, " 200 ") {
		t.Fatalf("CONNECT %s (allowed): %q, want 200", echo.Addr(), status)
	}
	if status := proxyConnect(t, proxy, consoleUnlisted+":443"); !strings.Contains(status, " 403 ") {
		t.Fatalf("CONNECT %s:443 (no rule): %q, want 403", consoleUnlisted, status)
	}
	q := new(dns.Msg)
	q.SetQuestion(consoleDNSName+".", dns.TypeA)
	if resp, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(q, dnsAddr); err != nil || resp.Rcode == dns.RcodeSuccess {
		t.Fatalf("DNS %s A (no rule) via airlock: %v, %v; want a refusal", consoleDNSName, resp, err)
	}

	b := startBrowser(t, chromium)
	shots := screenshotDirs(t)

	t.Run("overview", func(t *testing.T) {
		b.open(t, base+"/#/overview", `document.querySelector('#hit-ratio') && document.querySelector('svg.bars rect.allow')`)
		b.shoot(t, shots, "overview")
		b.noErrors(t, "overview")
	})

	t.Run("decisions", func(t *testing.T) {
		b.open(t, base+"/#/decisions", `document.querySelector('#stream-status')?.textContent === 'live'`)
		// Denied CONNECT while the page streams: it must appear in the
		// table (newest first) within the wait below.
		start := time.Now()
		if status := proxyConnect(t, proxy, consoleBlocked+":443"); !strings.Contains(status, " 403 ") {
			t.Fatalf("CONNECT %s:443 (deny rule): %q, want 403", consoleBlocked, status)
		}
		row := fmt.Sprintf(`[...document.querySelectorAll('#decisions tbody tr')].find((tr) => tr.dataset.verdict === 'deny' && tr.textContent.includes(%q))`, consoleBlocked)
		if _, err := b.poll(5*time.Second, row); err != nil {
			t.Fatalf("the denied CONNECT to %s is not in the live view 5 s after the 403: %v\n%s", consoleBlocked, err, b.text(t, "#decisions"))
		}
		t.Logf("denied CONNECT shown in the live view %s after the proxy answered 403", time.Since(start).Round(time.Millisecond))

		b.eval(t, row+`.querySelector('button.explain').click()`)
		if _, err := b.poll(10*time.Second, fmt.Sprintf(`document.querySelector('#explain-text')?.textContent.includes(%q)`, consoleDenyRule)); err != nil {
			t.Fatalf("explain of the denied row does not name the rule %s: %v\n%s", consoleDenyRule, err, b.text(t, "#detail"))
		}
		explain := b.text(t, "#explain-text")
		t.Logf("explain:\n%s", explain)
		b.shoot(t, shots, "decisions")

		dnsRow := fmt.Sprintf(`[...document.querySelectorAll('#decisions tbody tr')].find((tr) => tr.dataset.component === 'dns' && tr.textContent.includes(%q))`, consoleDNSName)
		if _, err := b.poll(5*time.Second, dnsRow); err != nil {
			t.Errorf("the denied DNS question for %s is not in the live view: %v", consoleDNSName, err)
		} else {
			b.eval(t, dnsRow+`.querySelector('button.explain').click()`)
			if _, err := b.poll(10*time.Second, fmt.Sprintf(`document.querySelector('#explain-text')?.textContent.includes('name %s')`, consoleDNSName)); err != nil {
				t.Errorf("explain of the DNS row: %v\n%s", err, b.text(t, "#detail"))
			}
		}

		b.eval(t, row+`.querySelector('button.allow').click()`)
		if _, err := b.poll(10*time.Second, `document.querySelector('#allow-snippet')?.textContent.includes('targetFqdns')`); err != nil {
			t.Fatalf("allow this shows no snippet: %v\n%s", err, b.text(t, "#detail"))
		}
		snippet := b.text(t, "#allow-snippet")
		if !strings.Contains(snippet, consoleBlocked) {
			t.Errorf("allow this snippet lacks %s:\n%s", consoleBlocked, snippet)
		}
		policyCheck(t, bin, "allow-this.yaml", snippet)
		b.noErrors(t, "decisions")

		// A filter the server refuses: its 400 text in the banner. The
		// failed requests are the expected console errors here.
		b.eval(t, `(() => { const f = document.querySelector('#f-src'); f.value = 'not-an-address'; f.dispatchEvent(new Event('change')); })()`)
		if _, err := b.poll(10*time.Second, `document.querySelector('#banner:not([hidden])')?.textContent.includes('not-an-address')`); err != nil {
			t.Errorf("a refused source filter is not reported in the banner: %v (banner %q)", err, b.text(t, "#banner"))
		}
		t.Logf("banner for a refused filter: %s", b.text(t, "#banner"))
		b.skipErrors()
	})

	t.Run("cache", func(t *testing.T) {
		b.open(t, base+"/#/cache", fmt.Sprintf(`document.querySelector('#repositories')?.textContent.includes(%q)`, consoleRepo))
		b.eval(t, `document.querySelector('#repositories details')?.toggleAttribute('open', true)`)
		if got := b.text(t, "#repositories"); !strings.Contains(got, consoleTag) {
			t.Errorf("the cached repository's tags = %q, want %s", got, consoleTag)
		}
		b.shoot(t, shots, "cache")
		b.noErrors(t, "cache")
	})

	t.Run("policy", func(t *testing.T) {
		b.open(t, base+"/#/policy", `document.querySelector('#learn-yaml') && document.querySelector('tr[data-rule]')`)
		if got := b.text(t, "tr[data-rule='console/partners/never-used']"); !strings.Contains(got, "never hit") {
			t.Errorf("the unused rule's row = %q, want it marked never hit", got)
		}
		if got := b.text(t, "tr[data-rule='console/local/echo']"); strings.Contains(got, "never hit") {
			t.Errorf("the echo rule's row = %q, want a hit count", got)
		}
		if got := b.text(t, "#tags"); !strings.Contains(got, "mcr.microsoft.com") {
			t.Errorf("FQDN tags = %q, want AzureKubernetesService expanded (mcr.microsoft.com)", got)
		}
		b.shoot(t, shots, "policy")
		// The download link, fetched by the page as the browser would.
		yaml, err := runFor(b, 30*time.Second, chromedp.Evaluate[string](
			`fetch(document.querySelector('#learn-download').href).then((r) => r.ok ? r.text() : Promise.reject(new Error('status ' + r.status)))`,
			chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("fetch the Download YAML link: %v", err)
		}
		if !strings.Contains(yaml, consoleUnlisted) {
			t.Errorf("learned YAML lacks the denied %s:\n%s", consoleUnlisted, yaml)
		}
		policyCheck(t, bin, "learned.yaml", yaml)

		// "Allow this" for a denied record (a CONNECT, a DNS question)
		// writes the group, collection and rule policy learn proposes for it.
		learned := decodePolicyDoc(t, "learned YAML", yaml)
		if len(learned.Policy.RuleCollectionGroups) != 1 {
			t.Fatalf("learned YAML has %d groups, want the one learned group:\n%s", len(learned.Policy.RuleCollectionGroups), yaml)
		}
		for _, n := range []string{consoleUnlisted, consoleDNSName} {
			snippet, err := runFor(b, 30*time.Second, chromedp.Evaluate[string](fmt.Sprintf(`(async () => {
				const m = await import('/ui/records.js');
				const line = (await (await fetch('/api/decisions?limit=1&verdict=deny&name=%s')).text()).trim();
				const groups = (await (await fetch('/api/policy')).json()).groups;
				return m.learnSnippet(JSON.parse(line), groups);
			})()`, n), chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatalf("allow-this snippet for %s: %v", n, err)
			}
			want := onlyRuleFor(learned.Policy.RuleCollectionGroups, n)
			if diff := cmp.Diff(want, decodePolicyDoc(t, "allow-this snippet", snippet).Policy.RuleCollectionGroups); diff != "" {
				t.Errorf("allow this for %s differs from policy learn's proposal (-learn +console):\n%s", n, diff)
			}
		}

		// A name a client chose cannot add keys or rules to the snippet.
		evil := "x.example.test\"]\n            - { name: injected, protocols: [\"https:443\"], sourceAddresses: [\"*\"], targetFqdns: [\"*\"] }\n# \u2028\u0085"
		snippet, err := runFor(b, 30*time.Second, chromedp.Evaluate[string](fmt.Sprintf(`import('/ui/records.js').then((m) => m.learnSnippet(
			{msg: 'egress decision', time: '2026-12-05T09:00:00Z', src: '10.1.2.3:4444', port: 443, name: %q, proto: 'tcp', app: 'https', verdict: 'deny', reason: 'no_match', rule: 'r\nversion: 2'}, []))`, evil),
			chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("allow-this snippet for a hostile name: %v", err)
		}
		doc := decodePolicyDoc(t, "allow-this snippet for a hostile name", snippet)
		if g := doc.Policy.RuleCollectionGroups; doc.Version != 1 || len(g) != 1 || len(g[0].RuleCollections) != 1 || len(g[0].RuleCollections[0].Rules) != 1 ||
			!slices.Equal(g[0].RuleCollections[0].Rules[0].TargetFqdns, []string{evil}) {
			t.Errorf("allow-this snippet for a hostile name decodes to %+v, want one rule whose targetFqdns is the name as sent:\n%s", doc, snippet)
		}
		b.noErrors(t, "policy")
	})
}

// policyDoc is a config document with only version and policy.
type policyDoc struct {
	Version int           `yaml:"version"`
	Policy  policy.Config `yaml:"policy"`
}

// onlyRuleFor returns groups with only the rule whose targetFqdns is
// [name] (and the collection holding it).
func onlyRuleFor(groups []policy.RuleCollectionGroup, name string) []policy.RuleCollectionGroup {
	var out []policy.RuleCollectionGroup
	for _, g := range groups {
		for _, c := range g.RuleCollections {
			for _, r := range c.Rules {
				if slices.Equal(r.TargetFqdns, []string{name}) {
					g.RuleCollections = []policy.RuleCollection{c}
					g.RuleCollections[0].Rules = []policy.Rule{r}
					out = append(out, g)
				}
			}
		}
	}
	return out
}

func decodePolicyDoc(t *testing.T, what, doc string) policyDoc {
	t.Helper()
	var d policyDoc
	if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatalf("%s is not YAML: %v\n%s", what, err, doc)
	}
	return d
}

// TestE2EConsoleNotLoopback: with admin.listen on every address and no
// admin.users, the console and its API answer 401 (asked through
// 127.0.0.1) while /healthz stays open.
func TestE2EConsoleNotLoopback(t *testing.T) {
	skipUnlessAirlock(t)
	r := newRegistry(t, kindAirlock, regOptions{anonymousPull: true})
	_, port, err := net.SplitHostPort(porttest.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	r.adminAddr = "127.0.0.1:" + port
	r.writeConfig("airlock.yaml", fmt.Sprintf("version: 1\nlog: { format: json }\nadmin: { listen: \"0.0.0.0:%s\" }\nregistry:\n  listen: %s\n%s  anonymousPull: true\n",
		port, r.addr, r.storageYAML()))
	r.bin, r.args = needAirlock(t), []string{"serve", "--config", r.configPath}
	r.start()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	for _, c := range []struct {
		path string
		want int
	}{
		{"/", http.StatusUnauthorized},
		{"/ui/app.js", http.StatusUnauthorized},
		{"/api/overview", http.StatusUnauthorized},
		{"/api/decisions/stream", http.StatusUnauthorized},
		{"/healthz", http.StatusOK},
	} {
		resp, err := hc.Get("http://" + r.adminAddr + c.path)
		if err != nil {
			t.Fatalf("GET %s: %v", c.path, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s on admin.listen 0.0.0.0 without users = %d %s, want %d", c.path, resp.StatusCode, body, c.want)
			continue
		}
		if c.want == http.StatusUnauthorized && !strings.Contains(string(body), "admin.users") {
			t.Errorf("GET %s: 401 body %s, want it to say to set admin.users", c.path, body)
		}
		t.Logf("GET %s → %d %s", c.path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
}

// TestE2EConsoleAdminUsers: with admin.listen on every address and an
// admin user, a request without credentials gets 401 with a Basic
// challenge, and the console works in the browser with the user's
// credentials (the pages' API calls and the stream reuse them).
func TestE2EConsoleAdminUsers(t *testing.T) {
	skipUnlessAirlock(t)
	chromium := needChromium(t)
	const user, password = "ops", "console-e2e-password"
	r := newRegistry(t, kindAirlock, regOptions{anonymousPull: true})
	_, port, err := net.SplitHostPort(porttest.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	r.adminAddr = "127.0.0.1:" + port
	r.writeConfig("airlock.yaml", fmt.Sprintf("version: 1\nlog: { format: json }\nadmin:\n  listen: \"0.0.0.0:%s\"\n  users: [ { name: %s, passwordHash: %q } ]\nregistry:\n  listen: %s\n%s  anonymousPull: true\n",
		port, user, bcryptHash(t, password), r.addr, r.storageYAML()))
	r.bin, r.args = needAirlock(t), []string{"serve", "--config", r.configPath}
	r.start()

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := hc.Get("http://" + r.adminAddr + "/api/overview")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("GET /api/overview without credentials = %d, WWW-Authenticate %q; want 401 with a Basic challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	b := startBrowser(t, chromium)
	b.open(t, fmt.Sprintf("http://%s:%s@%s/#/decisions", user, password, r.adminAddr),
		`document.querySelector('#stream-status')?.textContent === 'live'`)
	b.open(t, fmt.Sprintf("http://%s:%s@%s/#/overview", user, password, r.adminAddr), `document.querySelector('#hit-ratio')`)
	b.open(t, fmt.Sprintf("http://%s:%s@%s/#/policy", user, password, r.adminAddr), `document.querySelector('#learn-download')`)
	yaml, err := runFor(b, 30*time.Second, chromedp.Evaluate[string](
		`fetch(document.querySelector('#learn-download').href).then((r) => r.ok ? r.text() : Promise.reject(new Error('status ' + r.status)))`,
		chromedp.EvalAwaitPromise))
	if err != nil || !strings.Contains(yaml, "policy:") {
		t.Errorf("the Download YAML link with credentials: %v, %q", err, yaml)
	}
	if got := b.text(t, "#banner"); got != "" {
		t.Errorf("banner with credentials: %q, want none", got)
	}
	b.noErrors(t, "pages with credentials")
}

// needChromium returns Debian's chromium, or skips the test (fails it
// with AIRLOCK_REQUIRE_TOOLS=1, as make test sets).
func needChromium(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium"} {
		if bin, err := exec.LookPath(p); err == nil {
			return bin
		}
	}
	const why = "chromium not installed (scripts/deps.sh installs it)"
	if os.Getenv("AIRLOCK_REQUIRE_TOOLS") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

// browser is one headless Chromium with one tab; it keeps every console
// message of the tab (console API calls, exceptions, browser log entries).
type browser struct {
	ctx context.Context

	mu     sync.Mutex
	msgs   []chromedp.ConsoleMessage
	cursor int // messages before this were checked by noErrors
}

func startBrowser(t *testing.T, bin string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first action starts the browser and the tab, which live as long
	// as the context it gets: ctx itself, not a child with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	b := &browser{ctx: ctx}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.msgs = append(b.msgs, m)
			b.mu.Unlock()
		}
	}()
	return b
}

// runFor runs one browser action bounded by d.
func runFor[T any](b *browser, d time.Duration, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// open navigates to url and waits (10 s) until ready, a JavaScript
// expression, is truthy: the page's data has been rendered.
func (b *browser) open(t *testing.T, url, ready string) {
	t.Helper()
	if _, err := runFor(b, 30*time.Second, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate to %s: %v", url, err)
	}
	if _, err := b.poll(10*time.Second, ready); err != nil {
		t.Fatalf("%s: not rendered after 10 s (%s): %v\nbanner: %q\nconsole: %v", url, ready, err, b.text(t, "#banner"), b.all())
	}
}

// poll waits up to d until the JavaScript expression expr is truthy.
func (b *browser) poll(d time.Duration, expr string) (bool, error) {
	return runFor(b, d+5*time.Second, chromedp.Poll[bool]("!!("+expr+")", chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(50*time.Millisecond)))
}

func (b *browser) eval(t *testing.T, expr string) {
	t.Helper()
	if _, err := runFor(b, 10*time.Second, chromedp.Evaluate[chromedp.Void](expr)); err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
}

// text is the text content of the first element sel matches ("" when none).
func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	s, err := runFor(b, 10*time.Second, chromedp.Evaluate[string](
		fmt.Sprintf(`document.querySelector(%q)?.textContent ?? ''`, sel)))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}

func (b *browser) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.msgs {
		out = append(out, m.String())
	}
	return out
}

// noErrors fails the test for every error or exception the tab logged since
// the last call.
func (b *browser) noErrors(t *testing.T, page string) {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // messages of the last step arrive asynchronously
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.msgs[b.cursor:] {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			t.Errorf("%s page: console %s: %s (%s:%d)", page, m.Type, m.Text, m.URL, m.Line)
		}
	}
	b.cursor = len(b.msgs)
}

// skipErrors marks every message so far as checked: the step before
// caused errors on purpose.
func (b *browser) skipErrors() {
	time.Sleep(200 * time.Millisecond)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cursor = len(b.msgs)
}

// shoot saves a full-page PNG as NAME.png in each of dirs.
func (b *browser) shoot(t *testing.T, dirs []string, name string) {
	t.Helper()
	png, err := runFor(b, 30*time.Second, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot of %s: %v", name, err)
	}
	for _, d := range dirs {
		p := filepath.Join(d, "console-"+name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatalf("write %s: %v", p, err)
		}
		t.Logf("screenshot %s (%d bytes)", p, len(png))
	}
}

// screenshotDirs are where screenshots go: $E2E_ARTIFACTS or a temp dir,
// and docs/img with E2E_UPDATE_SCREENSHOTS=1.
func screenshotDirs(t *testing.T) []string {
	dir := os.Getenv("E2E_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	dirs := []string{dir}
	if os.Getenv("E2E_UPDATE_SCREENSHOTS") == "1" {
		docs, err := filepath.Abs(filepath.Join("..", "..", "docs", "img"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(docs, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, docs)
	}
	return dirs
}

// proxyConnect sends CONNECT target through the explicit proxy and returns
// the status line.
func proxyConnect(t *testing.T, proxy, target string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		t.Fatalf("dial the proxy %s: %v", proxy, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	status, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("CONNECT %s: reading the answer: %v", target, err)
	}
	return strings.TrimSpace(status)
}

// startEcho serves an echo on loopback until the test ends.
func startEcho(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln
}

// policyCheck writes doc (a config document with version and policy) and
// runs `airlock policy check` on it.
func policyCheck(t *testing.T, bin, name, doc string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "policy", "check", p).CombinedOutput()
	if err != nil {
		t.Fatalf("airlock policy check %s: %v\n%s\n--- %s:\n%s", name, err, out, name, doc)
	}
	t.Logf("airlock policy check %s: %s", name, strings.TrimSpace(string(out)))
}
