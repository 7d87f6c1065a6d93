package admin

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/airlockdev/airlock/internal/policy"
)

// writeDeadline bounds the writing of every response but the decision
// stream, in place of a server-wide WriteTimeout.
const writeDeadline = 30 * time.Second

// streamPing is how often the decision stream sends a comment, so proxies
// and browsers keep an idle stream open and a vanished client is noticed.
const streamPing = 15 * time.Second

// Console is what the console's API reads, wired by main. Every field may
// be left zero: the endpoint then answers with what it has (no records, no
// policy, cache disabled).
type Console struct {
	// Decisions holds the recent decision records (fed from the logger).
	Decisions *Decisions
	// Version and Replica (cluster.name; empty for one replica) are shown
	// in the overview.
	Version, Replica string
	// Policy returns the running policy's config and its compiled form
	// (both change on reload); nil: no policy.
	Policy func() (policy.Config, *policy.Policy)
	// Hits counts rule hits since the start (nil: none counted).
	Hits *policy.Hits
	// Learn proposes a policy from decision records (JSON lines) with the
	// given threshold (0: the configured one); nil: not available.
	Learn func(lines [][]byte, threshold int) (LearnResult, error)
	// Cache lists the cached repositories and the fills in progress; nil:
	// no pull-through cache runs.
	Cache func() (CacheContent, error)
	// Upstreams reports the upstream registries' health; nil: none.
	Upstreams func() []Upstream
}

// LearnResult is a policy proposal.
type LearnResult struct {
	YAML    []byte // a document with the top-level key policy:
	Records int    // decision records read
	Rules   int    // rules proposed
}

// CacheContent is what the cache holds and fetches.
type CacheContent struct {
	// Repositories is the cache's inventory (cache.RepoInventory values;
	// admin does not import the cache).
	Repositories any
	Fills        []Fill
}

// Fill is one upstream fetch in progress.
type Fill struct {
	Kind       string    `json:"kind"` // blob or manifest
	Repository string    `json:"repository"`
	Digest     string    `json:"digest"`
	Bytes      int64     `json:"bytes"`
	Size       int64     `json:"size"` // -1: unknown yet
	StartedAt  time.Time `json:"startedAt"`
	Waiters    int       `json:"waiters"`
}

// Upstream is one upstream registry's health.
type Upstream struct {
	Host        string    `json:"host"`
	Requests    uint64    `json:"requests"`
	Errors      uint64    `json:"errors"`
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
}

// SetConsole sets the console's data sources before Serve or Start.
func (s *Server) SetConsole(c Console) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.console = c
}

// mountConsole adds the console's pages and API to mux.
func (s *Server) mountConsole(mux *http.ServeMux) {
	s.mu.Lock()
	c := s.console
	s.mu.Unlock()
	if c.Decisions == nil {
		c.Decisions = NewDecisions(DecisionsOptions{Keep: 1})
	}
	a := &api{s: s, c: c}
	mux.HandleFunc("GET /api/overview", a.overview)
	mux.HandleFunc("GET /api/decisions", a.decisions)
	mux.HandleFunc("GET /api/decisions/stream", a.stream)
	mux.HandleFunc("GET /api/explain", a.explain)
	mux.HandleFunc("GET /api/policy", a.policy)
	mux.HandleFunc("GET /api/policy/hits", a.policyHits)
	mux.HandleFunc("GET /api/learn", a.learn)
	mux.HandleFunc("GET /api/cache", a.cache)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "the API is read-only: use GET")
			return
		}
		writeError(w, http.StatusNotFound, "no API endpoint "+r.URL.Path+": see docs/console.md for the list")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		serveConsoleFile(w, r, "index.html")
	})
	mux.Handle("GET /ui/", http.StripPrefix("/ui/", http.FileServerFS(ConsoleFS)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no page "+r.URL.Path+": the console is at /, its API under /api/")
	})
}

// serveConsoleFile serves one file of the embedded console.
func serveConsoleFile(w http.ResponseWriter, r *http.Request, name string) {
	b, err := fs.ReadFile(ConsoleFS, name)
	if err != nil {
		writeError(w, http.StatusNotFound, "the console's "+name+" is not in this build")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

// consoleCSP lets the console load scripts, styles, data and images from
// the admin listener only (and images it draws as data: URLs).
const consoleCSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// guard refuses request bodies and bounds the writing of every response
// but the decision stream.
func guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > 0 || len(r.TransferEncoding) > 0 {
			writeError(w, http.StatusBadRequest, "request bodies are not accepted: the admin endpoints are read-only")
			return
		}
		if r.URL.Path != "/api/decisions/stream" {
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeDeadline))
		}
		// The console loads only its own files and shows attacker-chosen
		// names from records: nothing from another origin, no framing.
		w.Header().Set("Content-Security-Policy", consoleCSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// writeError answers {"error": msg}.
func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

// api holds the console's handlers.
type api struct {
	s *Server
	c Console
}

// ComponentState is one component in the overview.
type ComponentState struct {
	Name   string `json:"name"`
	State  string `json:"state"` // ready, starting, not ready, degraded
	Reason string `json:"reason,omitempty"`
}

// Overview is GET /api/overview.
type Overview struct {
	Version    string           `json:"version"`
	Replica    string           `json:"replica"`
	StartedAt  time.Time        `json:"startedAt"`
	Components []ComponentState `json:"components"`
	Decisions  struct {
		PerMinute []Minute `json:"perMinute"`
	} `json:"decisions"`
	Cache struct {
		Enabled  bool     `json:"enabled"`
		Hits     float64  `json:"hits"`
		Misses   float64  `json:"misses"`
		HitRatio *float64 `json:"hitRatio"` // null when no requests
	} `json:"cache"`
	Upstreams []Upstream `json:"upstreams"`
}

func (a *api) overview(w http.ResponseWriter, r *http.Request) {
	var o Overview
	o.Version, o.Replica, o.StartedAt = a.c.Version, a.c.Replica, a.s.started.UTC()
	o.Components = a.s.components()
	o.Decisions.PerMinute = a.c.Decisions.PerMinute()
	o.Cache.Enabled = a.c.Cache != nil
	o.Cache.Hits, o.Cache.Misses = a.s.counterSum("airlock_cache_hits_total"), a.s.counterSum("airlock_cache_misses_total")
	if n := o.Cache.Hits + o.Cache.Misses; n > 0 {
		ratio := o.Cache.Hits / n
		o.Cache.HitRatio = &ratio
	}
	o.Upstreams = a.upstreams()
	writeJSON(w, o)
}

func (a *api) upstreams() []Upstream {
	if a.c.Upstreams == nil {
		return []Upstream{}
	}
	us := a.c.Upstreams()
	if us == nil {
		us = []Upstream{}
	}
	return us
}

// components lists every component named to SetReady or SetDegraded with
// its state, by name.
func (s *Server) components() []ComponentState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []ComponentState{}
	for name := range s.known {
		c := ComponentState{Name: name, State: "ready"}
		if why, ok := s.notReady[name]; ok {
			c.State, c.Reason = "not ready", why
			if why == "starting" {
				c.State = "starting"
			}
		} else if why, ok := s.degraded[name]; ok {
			c.State, c.Reason = "degraded", why
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// counterSum adds every series of the counter called name in the gatherer
// (0 when there is none).
func (s *Server) counterSum(name string) float64 {
	mfs, err := s.gatherer.Gather()
	if err != nil && len(mfs) == 0 {
		return 0
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// decisions answers the kept records that pass the query's filter as JSON
// lines, oldest first.
func (a *api) decisions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := ParseFilter(q.Get)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > DefaultDecisionsKept {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: use a number from 1 to %d", v, DefaultDecisionsKept))
			return
		}
	}
	lines := a.c.Decisions.Recent(f, limit)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	for _, l := range lines {
		w.Write(l)
		w.Write([]byte{'\n'})
	}
}

// stream sends each new record that passes the query's filter as a
// Server-Sent Event, with a comment every streamPing. It ends when the
// client goes (the subscription is freed at once), when a write stalls for
// writeDeadline, or when the client fell behind by a whole queue.
func (a *api) stream(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilter(r.URL.Query().Get)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rc := http.NewResponseController(w)
	sub := a.c.Decisions.Subscribe(f)
	defer a.c.Decisions.Unsubscribe(sub)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	send := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeDeadline)) // unsupported only in tests' recorders
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send([]byte("retry: 3000\n: connected\n\n")) {
		return
	}
	ping := time.NewTicker(streamPing)
	defer ping.Stop()
	buf := make([]byte, 0, 1024)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			if !send([]byte(": ping\n\n")) {
				return
			}
		case line, ok := <-sub.C():
			if !ok {
				send([]byte("event: dropped\ndata: {\"error\":\"this client fell behind by a whole queue of records; reconnect\"}\n\n"))
				return
			}
			buf = append(append(append(buf[:0], "data: "...), line...), "\n\n"...)
			if !send(buf) {
				return
			}
		}
	}
}

func (a *api) currentPolicy() (policy.Config, *policy.Policy) {
	if a.c.Policy == nil {
		return policy.Config{}, nil
	}
	return a.c.Policy()
}

func (a *api) policyHits(w http.ResponseWriter, r *http.Request) {
	cfg, _ := a.currentPolicy()
	writeJSON(w, a.c.Hits.Report(cfg))
}

func (a *api) learn(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	threshold := 0
	if v := q.Get("threshold"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 || n > 1000 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("threshold %q: use a number from 2 to 1000 (sibling names of one domain needed to propose *.domain)", v))
			return
		}
		threshold = n
	}
	format := q.Get("format")
	if format != "" && format != "yaml" && format != "json" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("format %q: use yaml (the default) or json", format))
		return
	}
	if a.c.Learn == nil {
		writeError(w, http.StatusServiceUnavailable, "policy learn is not available in this build")
		return
	}
	res, err := a.c.Learn(a.c.Decisions.Recent(Filter{}, 0), threshold)
	if err != nil {
		a.s.log.Error("console: learn", "err", err)
		writeError(w, http.StatusInternalServerError, "learning from the recent records failed: "+err.Error())
		return
	}
	if format == "json" {
		writeJSON(w, map[string]any{"yaml": string(res.YAML), "records": res.Records, "rules": res.Rules})
		return
	}
	w.Header().Set("Content-Type", "text/yaml; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="airlock-learned-policy.yaml"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(res.YAML)
}

// CacheView is GET /api/cache.
type CacheView struct {
	Enabled      bool       `json:"enabled"`
	Repositories any        `json:"repositories"`
	Fills        []Fill     `json:"fills"`
	Upstreams    []Upstream `json:"upstreams"`
}

func (a *api) cache(w http.ResponseWriter, r *http.Request) {
	v := CacheView{Repositories: []any{}, Fills: []Fill{}, Upstreams: a.upstreams()}
	if a.c.Cache != nil {
		cc, err := a.c.Cache()
		if err != nil {
			a.s.log.Error("console: cache inventory", "err", err)
			writeError(w, http.StatusInternalServerError, "listing the cache failed; see the airlock log")
			return
		}
		v.Enabled = true
		if cc.Repositories != nil {
			v.Repositories = cc.Repositories
		}
		if cc.Fills != nil {
			v.Fills = cc.Fills
		}
	}
	writeJSON(w, v)
}
