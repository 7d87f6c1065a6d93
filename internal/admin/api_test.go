package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/airlockdev/airlock/internal/basicauth"
	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/testkit/porttest"
)

// testPolicy allows https to mcr.microsoft.com from 10.244.0.0/16 and
// uses the AzureKubernetesService tag.
func testPolicy(t *testing.T) (policy.Config, *policy.Policy) {
	t.Helper()
	cfg := policy.Config{RuleCollectionGroups: []policy.RuleCollectionGroup{{
		Name: "aks", Priority: 100,
		RuleCollections: []policy.RuleCollection{{
			Name: "aksfwar", Type: policy.TypeApplication, Priority: 200, Action: policy.ActionAllow,
			Rules: []policy.Rule{
				{Name: "mcr", SourceAddresses: []string{"10.244.0.0/16"}, Protocols: []string{"https:443"}, TargetFqdns: []string{"mcr.microsoft.com"}},
				{Name: "tag", SourceAddresses: []string{"*"}, FqdnTags: []string{"AzureKubernetesService"}},
			},
		}},
	}}}
	pol, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, pol
}

func consoleServer(t *testing.T, cfg Config) (*Server, *Decisions) {
	t.Helper()
	reg := prometheus.NewRegistry()
	hits := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_cache_hits_total", Help: "x"}, []string{"kind"})
	misses := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_cache_misses_total", Help: "x"}, []string{"kind"})
	reg.MustRegister(hits, misses)
	hits.WithLabelValues("blob").Add(3)
	hits.WithLabelValues("manifest").Add(1)
	misses.WithLabelValues("blob").Add(4)
	d := NewDecisions(DecisionsOptions{Registerer: reg})
	pcfg, pol := testPolicy(t)
	h := policy.NewHits(time.Now())
	h.Count("gateway", pol.Decide(policy.Flow{}), time.Now())
	s := New(cfg, reg, nil)
	s.SetReady("registry", "starting")
	s.SetReady("gateway", "")
	s.SetDegraded("cluster", "redis unreachable")
	s.SetConsole(Console{
		Decisions: d, Version: "v-test", Replica: "gw1",
		Policy: func() (policy.Config, *policy.Policy) { return pcfg, pol },
		Hits:   h,
		Learn: func(lines [][]byte, threshold int) (LearnResult, error) {
			return LearnResult{YAML: []byte("policy:\n  ruleCollectionGroups: []\n"), Records: len(lines), Rules: threshold}, nil
		},
		Cache: func() (CacheContent, error) {
			return CacheContent{Repositories: []map[string]string{{"repository": "aks-managed-repository/x"}},
				Fills: []Fill{{Kind: "blob", Repository: "r", Digest: "sha256:ab", Bytes: 10, Size: -1, Waiters: 2}}}, nil
		},
		Upstreams: func() []Upstream {
			return []Upstream{{Host: "mcr.microsoft.com", Requests: 5, Errors: 1, LastError: "get blob: connection refused"}}
		},
	})
	return s, d
}

func getJSON(t *testing.T, h http.Handler, path string, v any) int {
	t.Helper()
	code, body := get(t, h, path)
	if code == 200 {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("GET %s: %v in %q", path, err, body)
		}
	}
	return code
}

func TestOverview(t *testing.T) {
	s, d := consoleServer(t, Config{})
	d.Add([]byte(rec(0, "deny", "10.0.0.1:1", "a", "", false)))
	var o map[string]any
	if code := getJSON(t, s.Handler(), "/api/overview", &o); code != 200 {
		t.Fatalf("GET /api/overview = %d", code)
	}
	for _, k := range []string{"version", "replica", "startedAt", "components", "decisions", "cache", "upstreams"} {
		if _, ok := o[k]; !ok {
			t.Errorf("overview lacks %q: %v", k, o)
		}
	}
	var ov Overview
	getJSON(t, s.Handler(), "/api/overview", &ov)
	want := []ComponentState{{"cluster", "degraded", "redis unreachable"}, {"gateway", "ready", ""}, {"registry", "starting", "starting"}}
	if len(ov.Components) != 3 || ov.Components[0] != want[0] || ov.Components[1] != want[1] || ov.Components[2] != want[2] {
		t.Errorf("components = %+v, want %+v", ov.Components, want)
	}
	pm := ov.Decisions.PerMinute
	if len(pm) != 60 || pm[59].Deny != 1 {
		t.Errorf("perMinute = %d minutes, last %+v; want 60 with 1 deny last", len(pm), pm[len(pm)-1])
	}
	if !ov.Cache.Enabled || ov.Cache.Hits != 4 || ov.Cache.Misses != 4 || ov.Cache.HitRatio == nil || *ov.Cache.HitRatio != 0.5 {
		t.Errorf("cache = %+v, want enabled, 4 hits, 4 misses, ratio 0.5", ov.Cache)
	}
	if len(ov.Upstreams) != 1 || ov.Upstreams[0].Errors != 1 {
		t.Errorf("upstreams = %+v", ov.Upstreams)
	}
	if ov.Version != "v-test" || ov.Replica != "gw1" {
		t.Errorf("version, replica = %q, %q", ov.Version, ov.Replica)
	}
}

func TestExplainAPI(t *testing.T) {
	s, _ := consoleServer(t, Config{})
	h := s.Handler()
	var e ExplainView
	if code := getJSON(t, h, "/api/explain?src=10.244.1.2&dst=20.1.2.3:443&sni=mcr.microsoft.com", &e); code != 200 {
		t.Fatalf("GET /api/explain = %d", code)
	}
	if e.Decision.Verdict != policy.VerdictAllow || e.Decision.Rule != "mcr" || e.Decision.Collection != "aksfwar" {
		t.Errorf("decision = %+v, want allow by aks/aksfwar/mcr", e.Decision)
	}
	if !strings.Contains(e.Text, "rule      application aks/aksfwar/mcr") || len(e.Steps) == 0 || !e.Steps[len(e.Steps)-1].Matched {
		t.Errorf("text = %q, steps = %+v; want explain's text and the matching step last", e.Text, e.Steps)
	}
	var deny ExplainView
	getJSON(t, h, "/api/explain?src=10.1.1.1&dst=evil.example:443&proto=tcp&sni=evil.example", &deny)
	if deny.Decision.Verdict != policy.VerdictDeny || deny.Meaning == "" {
		t.Errorf("decision for evil.example = %+v (%q), want deny with a meaning", deny.Decision, deny.Meaning)
	}
	for _, q := range []string{"", "?src=10.0.0.1", "?src=x&dst=a:1", "?src=10.0.0.1&dst=a", "?src=10.0.0.1&dst=a:99999", "?src=10.0.0.1&dst=a:1&proto=sctp", "?src=10.0.0.1&dst=a:1&sni=a&host=b", "?src=10.0.0.1&dst=a:1&sni=bad..name"} {
		code, body := get(t, h, "/api/explain"+q)
		if code != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("GET /api/explain%s = %d %q, want 400 with a JSON error", q, code, body)
		}
	}
}

func TestPolicyAPI(t *testing.T) {
	s, _ := consoleServer(t, Config{})
	var p PolicyView
	if code := getJSON(t, s.Handler(), "/api/policy", &p); code != 200 {
		t.Fatalf("GET /api/policy = %d", code)
	}
	if len(p.Groups) != 1 || p.Groups[0].RuleCollections[0].Rules[0].TargetFqdns[0] != "mcr.microsoft.com" {
		t.Errorf("groups = %+v", p.Groups)
	}
	if len(p.Hits.Rules) != 2 {
		t.Errorf("hits = %+v, want both rules", p.Hits)
	}
	if len(p.Tags) != 1 || p.Tags[0].Name != "AzureKubernetesService" || len(p.Tags[0].Entries) == 0 || len(p.Tags[0].Entries[0].Protocols) == 0 {
		t.Errorf("tags = %+v, want AzureKubernetesService expanded", p.Tags)
	}
	var raw map[string]any
	getJSON(t, s.Handler(), "/api/policy", &raw)
	g := raw["groups"].([]any)[0].(map[string]any)
	if _, ok := g["ruleCollections"]; !ok {
		t.Errorf("groups[0] keys = %v, want airlock.yaml's (ruleCollections)", g)
	}
	var hr policy.HitsReport
	if code := getJSON(t, s.Handler(), "/api/policy/hits", &hr); code != 200 || len(hr.Rules) != 2 || hr.NoRule["gateway deny"] != 1 {
		t.Errorf("GET /api/policy/hits = %d %+v, want both rules and 1 gateway deny without a rule", code, hr)
	}
}

func TestDecisionsAPI(t *testing.T) {
	s, d := consoleServer(t, Config{})
	d.Add([]byte(rec(0, "allow", "10.244.1.2:5000", "mcr.microsoft.com", "mcr", false)))
	d.Add([]byte(rec(1, "deny", "10.244.1.3:5000", "evil.example", "", false)))
	rr := httptest.NewRecorder()
	s.Handler().ServeHTTP(rr, httptest.NewRequest("GET", "/api/decisions?verdict=deny", nil))
	if rr.Code != 200 || rr.Header().Get("Content-Type") != "application/x-ndjson" || strings.Count(rr.Body.String(), "\n") != 1 || !strings.Contains(rr.Body.String(), "evil.example") {
		t.Errorf("GET /api/decisions?verdict=deny = %d %q %q, want one NDJSON line", rr.Code, rr.Header().Get("Content-Type"), rr.Body)
	}
	for _, q := range []string{"?limit=0", "?limit=x", "?limit=10001", "?verdict=x", "?src=x"} {
		if code, body := get(t, s.Handler(), "/api/decisions"+q); code != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("GET /api/decisions%s = %d %q, want 400 JSON", q, code, body)
		}
	}
}

func TestLearnAndCacheAPI(t *testing.T) {
	s, d := consoleServer(t, Config{})
	d.Add([]byte(rec(0, "deny", "10.0.0.1:1", "a", "", false)))
	rr := httptest.NewRecorder()
	s.Handler().ServeHTTP(rr, httptest.NewRequest("GET", "/api/learn?threshold=4", nil))
	if rr.Code != 200 || !strings.HasPrefix(rr.Body.String(), "policy:") || !strings.Contains(rr.Header().Get("Content-Disposition"), `filename="airlock-learned-policy.yaml"`) {
		t.Errorf("GET /api/learn = %d %q %v", rr.Code, rr.Body, rr.Header())
	}
	var lj struct {
		YAML           string
		Records, Rules int
	}
	if code := getJSON(t, s.Handler(), "/api/learn?format=json&threshold=4", &lj); code != 200 || lj.Records != 1 || lj.Rules != 4 || lj.YAML == "" {
		t.Errorf("GET /api/learn?format=json = %d %+v", code, lj)
	}
	for _, q := range []string{"?threshold=1", "?threshold=x", "?format=xml"} {
		if code, _ := get(t, s.Handler(), "/api/learn"+q); code != 400 {
			t.Errorf("GET /api/learn%s = %d, want 400", q, code)
		}
	}
	var c CacheView
	if code := getJSON(t, s.Handler(), "/api/cache", &c); code != 200 || !c.Enabled || len(c.Fills) != 1 || c.Fills[0].Size != -1 || len(c.Upstreams) != 1 {
		t.Errorf("GET /api/cache = %d %+v", code, c)
	}
	empty := New(Config{}, prometheus.NewRegistry(), nil)
	var ec map[string]any
	if code := getJSON(t, empty.Handler(), "/api/cache", &ec); code != 200 || ec["enabled"] != false || ec["fills"] == nil {
		t.Errorf("GET /api/cache without a cache = %d %v, want enabled false and empty lists", code, ec)
	}
}

func TestBadRequests(t *testing.T) {
	s, _ := consoleServer(t, Config{})
	h := s.Handler()
	for _, tt := range []struct {
		method, path string
		body         string
		want         int
	}{
		{"GET", "/api/nothing", "", 404},
		{"GET", "/nothing", "", 404},
		{"POST", "/api/overview", "", 405},
		{"GET", "/api/overview", "x=1", 400},
	} {
		rr := httptest.NewRecorder()
		var body io.Reader
		if tt.body != "" {
			body = strings.NewReader(tt.body)
		}
		h.ServeHTTP(rr, httptest.NewRequest(tt.method, tt.path, body))
		if rr.Code != tt.want || rr.Header().Get("Content-Type") != "application/json" || !strings.Contains(rr.Body.String(), `"error"`) {
			t.Errorf("%s %s = %d %q, want %d with a JSON error", tt.method, tt.path, rr.Code, rr.Body, tt.want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for listen, want := range map[string]bool{
		"127.0.0.1:9090": true, "127.1.2.3:9090": true, "[::1]:9090": true, "localhost:9090": true, "LOCALHOST:1": true,
		":9090": false, "0.0.0.0:9090": false, "[::]:9090": false, "10.0.0.1:9090": false, "admin.example:9090": false,
	} {
		if got := IsLoopback(listen); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", listen, got, want)
		}
	}
}

func TestAuthMatrix(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	users := []basicauth.User{{Name: "ops", PasswordHash: string(hash)}}
	type req struct {
		path       string
		user, pass string
		want       int
	}
	for _, tt := range []struct {
		name string
		cfg  Config
		reqs []req
	}{
		{name: "loopback: no credentials needed", cfg: Config{Listen: "127.0.0.1:9090", Open: DefaultOpen}, reqs: []req{
			{path: "/api/overview", want: 200}, {path: "/metrics", want: 200}, {path: "/api/policy/hits", want: 200},
		}},
		{name: "not loopback with users", cfg: Config{Listen: "0.0.0.0:9090", Users: users, Open: DefaultOpen}, reqs: []req{
			{path: "/metrics", want: 200}, {path: "/healthz", want: 200}, {path: "/readyz", want: 503},
			{path: "/api/overview", want: 401},
			{path: "/api/overview", user: "ops", pass: "wrong", want: 401},
			{path: "/api/overview", user: "nobody", pass: "s3cret", want: 401},
			{path: "/api/overview", user: "ops", pass: "s3cret", want: 200},
			{path: "/api/decisions", user: "ops", pass: "s3cret", want: 200},
			{path: "/", want: 401},
		}},
		{name: "not loopback, metrics closed", cfg: Config{Listen: "10.0.0.1:9090", Users: users, Open: []string{"healthz"}}, reqs: []req{
			{path: "/metrics", want: 401}, {path: "/healthz", want: 200}, {path: "/metrics", user: "ops", pass: "s3cret", want: 200},
		}},
		{name: "not loopback without users", cfg: Config{Listen: ":9090", Open: DefaultOpen}, reqs: []req{
			{path: "/healthz", want: 200}, {path: "/api/overview", want: 401}, {path: "/api/overview", user: "ops", pass: "s3cret", want: 401},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := consoleServer(t, tt.cfg)
			h := s.Handler()
			for _, r := range tt.reqs {
				rq := httptest.NewRequest("GET", r.path, nil)
				if r.user != "" {
					rq.SetBasicAuth(r.user, r.pass)
				}
				rr := httptest.NewRecorder()
				h.ServeHTTP(rr, rq)
				if rr.Code != r.want {
					t.Errorf("GET %s as %q = %d %q, want %d", r.path, r.user, rr.Code, rr.Body, r.want)
				}
				if rr.Code == 401 {
					if rr.Header().Get("WWW-Authenticate") != `Basic realm="airlock"` || !strings.Contains(rr.Body.String(), `"error"`) {
						t.Errorf("GET %s 401 = %v %q, want WWW-Authenticate and a JSON error", r.path, rr.Header(), rr.Body)
					}
					if len(tt.cfg.Users) == 0 && !strings.Contains(rr.Body.String(), "set admin.users") {
						t.Errorf("GET %s without users = %q, want it to say set admin.users", r.path, rr.Body)
					}
				}
			}
		})
	}
}

// The stream over a real listener: a record logged after the client
// connected arrives as one SSE data line; a filtered-out one does not; the
// subscription is freed once the client goes.
func TestStreamAPI(t *testing.T) {
	s, d := consoleServer(t, Config{})
	addr := porttest.FreeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Shutdown(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/api/decisions/stream?verdict=deny", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET stream = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	waitFor(t, func() bool { return d.Subscribers() == 1 })
	d.Add([]byte(rec(0, "allow", "10.0.0.1:1", "allowed.example", "", false)))
	d.Add([]byte(rec(1, "deny", "10.0.0.1:1", "denied.example", "", false)))
	sc := bufio.NewScanner(resp.Body)
	var data string
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "data: ") {
			data = l
			break
		}
	}
	if !strings.Contains(data, "denied.example") || !json.Valid([]byte(strings.TrimPrefix(data, "data: "))) {
		t.Errorf("first event = %q, want the denied record as JSON", data)
	}
	cancel()
	resp.Body.Close()
	waitFor(t, func() bool { return d.Subscribers() == 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The console's page and API answers forbid other origins and framing.
func TestConsoleSecurityHeaders(t *testing.T) {
	s, _ := consoleServer(t, Config{})
	h := s.Handler()
	for _, path := range []string{"/", "/ui/app.js", "/api/overview"} {
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, httptest.NewRequest("GET", path, nil))
		if rr.Code != 200 {
			t.Errorf("GET %s = %d", path, rr.Code)
		}
		if got := rr.Header().Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'self'") || !strings.Contains(got, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, got)
		}
		if rr.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no X-Content-Type-Options: nosniff", path)
		}
	}
}
