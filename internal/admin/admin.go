// Package admin serves the operator endpoints: /metrics (Prometheus text
// format), /healthz (the process is alive) and /readyz (every component that
// should be serving is). It owns no component state; readiness checks are
// functions injected by main.
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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is the admin section of airlock.yaml.
type Config struct {
	// Listen is the host:port of /metrics, /healthz and /readyz. Default
	// "": not served. The embedded default sets 127.0.0.1:9090. Checked by
	// the config loader (config:"listen").
	Listen string `yaml:"listen" config:"listen"`
}

// Validate has nothing to add to the loader's listen check.
func (c *Config) Validate(report func(path, msg string)) {}

// Server serves the admin endpoints.
type Server struct {
	gatherer prometheus.Gatherer
	log      *slog.Logger
	listen   string     // Config.Listen, bound by Start
	failed   chan error // Start's serving error, when it ends before Shutdown

	mu       sync.Mutex
	notReady map[string]string // component → reason
	degraded map[string]string // component → reason: serving, but not fully (still ready)
	extra    map[string]http.Handler
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
	return &Server{gatherer: g, log: log, listen: cfg.Listen, failed: make(chan error, 1),
		notReady: map[string]string{}, degraded: map[string]string{}, extra: map[string]http.Handler{}}
}

// SetReady marks a component ready (reason "") or not ready with a reason.
func (s *Server) SetReady(component, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
	if reason == "" {
		delete(s.degraded, component)
	} else {
		s.degraded[component] = reason
	}
}

// Handler returns the admin mux.
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
	return mux
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
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
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
