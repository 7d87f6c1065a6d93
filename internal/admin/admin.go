// Package admin serves the operator endpoints: /metrics (Prometheus text
// format), /healthz (the process is alive), /readyz (every component that
// should be serving is), and the console: its embedded pages (console.go)
// and its JSON API under /api/ (api.go). It owns no component state: the
// console's data sources are functions injected by main (Console), and
// decision records reach it through Decisions, fed from the logger.
// A listener that is not loopback needs admin.users' credentials for
// everything but admin.open (auth.go).
//
// Lifecycle: New does no I/O; Start binds admin.listen and serves in the
// background; Shutdown drains until its context ends.
//
// Concurrency: SetReady and the handlers may be called from any goroutine.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/airlockdev/airlock/internal/basicauth"
)

// Config is the admin section of airlock.yaml.
type Config struct {
	// Listen is the host:port of /metrics, /healthz, /readyz, the console
	// and its API. Default "": not served. The embedded default sets
	// 127.0.0.1:9090. Checked by the config loader (config:"listen").
	Listen string `yaml:"listen" config:"listen"`
	// Users may sign in with HTTP Basic (bcrypt hashes, as registry.users).
	// They are needed only when Listen is not loopback: then everything
	// not in Open needs one. Default: none (a non-loopback listener then
	// answers 401 to everything not open).
	Users []basicauth.User `yaml:"users"`
	// Open lists the endpoints served without credentials on a listener
	// that is not loopback: metrics, healthz, readyz. Default: all three;
	// [] closes them too.
	Open []string `yaml:"open"`
}

// SetDefaults opens metrics, healthz and readyz.
func (c *Config) SetDefaults() {
	c.Open = append([]string(nil), DefaultOpen...)
}

// Validate checks the users (as registry.users) and the open endpoints'
// names; the listen address is the loader's.
func (c *Config) Validate(report func(path, msg string)) {
	basicauth.ValidateUsers(c.Users, report)
	validateOpen(c.Open, report)
}

// Warnings are what `airlock config check` says about an admin section
// that is valid but probably not what was meant.
func (c *Config) Warnings() []string {
	if c.Listen != "" && !IsLoopback(c.Listen) && len(c.Users) == 0 {
		return []string{"admin.listen " + c.Listen + " is not loopback and admin.users is empty: the console and /api/* answer 401 to everyone; set admin.users"}
	}
	return nil
}

// Server serves the admin endpoints.
type Server struct {
	gatherer prometheus.Gatherer
	log      *slog.Logger
	listen   string     // Config.Listen, bound by Start
	failed   chan error // Start's serving error, when it ends before Shutdown
	started  time.Time
	auth     atomic.Pointer[authState]

	mu       sync.Mutex
	known    map[string]bool   // every component named to SetReady or SetDegraded
	notReady map[string]string // component → reason
	degraded map[string]string // component → reason: serving, but not fully (still ready)
	extra    map[string]http.Handler
	console  Console
	srv      *http.Server
}

// Handle adds a component's read-only endpoint (e.g. GET /cache) before
// Serve is called.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extra[pattern] = h
}

// New returns a server exposing the metrics of g, to be bound on
// cfg.Listen by Start. It does no I/O.
func New(cfg Config, g prometheus.Gatherer, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{gatherer: g, log: log, listen: cfg.Listen, failed: make(chan error, 1), started: time.Now(),
		known: map[string]bool{}, notReady: map[string]string{}, degraded: map[string]string{}, extra: map[string]http.Handler{}}
	if err := s.Reload(cfg); err != nil {
		// Only bcrypt failing to hash a random password gets here: refuse
		// everything that needs credentials.
		log.Error("admin: credentials unusable; everything but admin.open answers 401", "err", err)
		s.auth.Store(&authState{required: cfg.Listen != "" && !IsLoopback(cfg.Listen), open: map[string]bool{}, listen: cfg.Listen, now: time.Now})
	}
	return s
}

// Reload applies a re-read admin section's users and open endpoints (the
// listen address changes only on restart).
func (s *Server) Reload(cfg Config) error {
	cfg.Listen = s.listen
	a, err := newAuthState(cfg, time.Now)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	s.auth.Store(a)
	return nil
}

// SetReady marks a component ready (reason "") or not ready with a reason.
func (s *Server) SetReady(component, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.known[component] = true
	if reason == "" {
		delete(s.notReady, component)
	} else {
		s.notReady[component] = reason
	}
}

// SetDegraded marks a component degraded (reason non-empty) or not: it
// serves, with less than its full function (a cluster replica coordinating
// locally while Redis is unreachable). /readyz stays 200 — a load balancer
// must not take every replica out because a shared dependency is down —
// and lists the reasons after the first line "degraded".
func (s *Server) SetDegraded(component, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.known[component] = true
	if reason == "" {
		delete(s.degraded, component)
	} else {
		s.degraded[component] = reason
	}
}

// Handler returns the admin mux: every endpoint behind the credential
// check (auth.go) and the request guard (no bodies, write deadlines).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	s.mu.Lock()
	for p, h := range s.extra {
		mux.Handle(p, h)
	}
	s.mu.Unlock()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		lines, degraded := reasons(s.notReady), reasons(s.degraded)
		s.mu.Unlock()
		switch {
		case len(lines) > 0:
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(strings.Join(append(lines, degraded...), "\n") + "\n"))
		case len(degraded) > 0:
			w.Write([]byte("degraded\n" + strings.Join(degraded, "\n") + "\n"))
		default:
			w.Write([]byte("ready\n"))
		}
	})
	s.mountConsole(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.auth.Load().wrap(guard(mux)).ServeHTTP(w, r)
	})
}

// reasons lists "component: reason" lines, sorted.
func reasons(m map[string]string) []string {
	var lines []string
	for c, why := range m {
		lines = append(lines, c+": "+why)
	}
	sort.Strings(lines)
	return lines
}

// Serve answers on ln until Shutdown; nil after a clean shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return serveUntilShutdown(s.prepare(ln), ln)
}

// Start binds Config.Listen and returns once it is bound; the endpoints are
// then served in the background until Shutdown. An error that ends serving
// before Shutdown is delivered on Failed.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.listen)
	if err != nil {
		return fmt.Errorf("admin: listen on %s: %w (set admin.listen)", s.listen, err)
	}
	srv := s.prepare(ln) // before returning: a Shutdown from now on stops it
	go func() {
		if err := serveUntilShutdown(srv, ln); err != nil {
			s.failed <- fmt.Errorf("admin: %w", err)
		}
	}()
	return nil
}

// Failed receives the error that ended serving before Shutdown (at most
// one); nothing after a clean Shutdown.
func (s *Server) Failed() <-chan error { return s.failed }

// prepare builds the HTTP server for ln and makes it the one Shutdown stops.
func (s *Server) prepare(ln net.Listener) *http.Server {
	// No WriteTimeout: it would cut the decision stream; the other
	// handlers set their own write deadline (guard).
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	s.log.Info("admin listening", "addr", ln.Addr().String())
	return srv
}

func serveUntilShutdown(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting and waits for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}
