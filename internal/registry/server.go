package registry

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// Resolver maps a mirror-style request (containerd's ?ns=HOST query) to the
// repository that holds it; the pull-through cache implements it. An error
// is answered to the client (an *oci.Error such as NAME_UNKNOWN).
type Resolver interface {
	Resolve(name, ns string) (string, error)
}

// Deps are the registry's collaborators, injected by main.
type Deps struct {
	// Store is the storage contract the API serves from; its errors are
	// mapped to OCI wire errors in toOCI.
	Store storage.Store
	// Resolver handles ?ns=; nil: the parameter is ignored (a plain
	// registry serves its own repository of that name).
	Resolver Resolver
	Logger   *slog.Logger
	Metrics  *Metrics
	// Purge removes idle uploads; called every PurgeInterval when set.
	Purge func() (int, error)
	// Singleton, when set, runs a periodic job on one replica at a time
	// (cluster.Cluster.RunSingleton; it blocks until ctx ends). Nil: the
	// job runs here on its own ticker.
	Singleton func(ctx context.Context, name string, interval time.Duration, fn func(context.Context) error)
	Now       func() time.Time
	// Redirect, when set (registry.storage.redirect), gives a
	// time-limited URL from which a client may read blob d directly from
	// object storage; a blob GET is then answered 307 to it. An error
	// (the blob is not in the storage yet, a cache miss) streams as usual.
	Redirect func(ctx context.Context, d oci.Digest) (string, error)
	// PeerAuth, when set, checks the token of a request from another
	// replica (header storage.PeerHeader; cluster.Cluster.CheckPeerToken).
	// Such a pull is served without credentials and marked
	// storage.WithPeerOnly; a wrong token is refused (401). Nil: the
	// header is ignored.
	PeerAuth func(ctx context.Context, token string) bool
}

// PurgeInterval is how often idle uploads are looked for.
const PurgeInterval = 10 * time.Minute

// Server is the OCI distribution HTTP server.
type Server struct {
	store     storage.Store
	resolve   Resolver
	log       *slog.Logger
	metrics   *Metrics
	purge     func() (int, error)
	singleton func(ctx context.Context, name string, interval time.Duration, fn func(context.Context) error)
	now       func() time.Time
	redir     func(ctx context.Context, d oci.Digest) (string, error)
	peerAuth  func(ctx context.Context, token string) bool
	tlsOn     bool
	listen    string    // cfg.Listen, bound by Start
	tlsCfg    TLSConfig // the key pair Start loads

	auth atomic.Pointer[authState]
	cert atomic.Pointer[tls.Certificate]

	dummy []byte

	mu     sync.Mutex
	srv    *http.Server
	done   chan struct{}
	failed chan error // Start's serving error, when it ends before Shutdown
}

// New builds a server. It does no I/O; the TLS key pair is loaded by
// LoadTLS (Start calls it).
func New(cfg *Config, deps Deps) (*Server, error) {
	if deps.Store == nil {
		return nil, errors.New("registry: no store")
	}
	s := &Server{
		store:     deps.Store,
		resolve:   deps.Resolver,
		log:       deps.Logger,
		metrics:   deps.Metrics,
		purge:     deps.Purge,
		singleton: deps.Singleton,
		redir:     deps.Redirect,
		peerAuth:  deps.PeerAuth,
		now:       deps.Now,
		tlsOn:     cfg.TLS.Enabled(),
		listen:    cfg.Listen,
		tlsCfg:    cfg.TLS,
		done:      make(chan struct{}),
		failed:    make(chan error, 1),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.metrics == nil {
		s.metrics = NewMetrics(nil)
	}
	if s.now == nil {
		s.now = time.Now
	}
	// A bcrypt hash of a random password, compared against when an unknown
	// user authenticates so that response time does not reveal user names.
	var pw [16]byte
	rand.Read(pw[:])
	dummy, err := bcrypt.GenerateFromPassword(pw[:], bcrypt.DefaultCost)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	s.dummy = dummy
	s.auth.Store(newAuthState(cfg, dummy))
	return s, nil
}

// LoadTLS reads the certificate and key named in cfg.
func (s *Server) LoadTLS(cfg *Config) error {
	if !cfg.TLS.Enabled() {
		return nil
	}
	c, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		return fmt.Errorf("registry: load TLS key pair: %w", err)
	}
	s.cert.Store(&c)
	return nil
}

// Reload applies what can change without a restart: users, anonymousPull
// and the TLS certificate. Listen address and storage path need a restart.
func (s *Server) Reload(cfg *Config) error {
	if cfg.TLS.Enabled() != s.tlsOn {
		return errors.New("registry: switching TLS on or off needs a restart")
	}
	if err := s.LoadTLS(cfg); err != nil {
		return err
	}
	s.auth.Store(newAuthState(cfg, s.dummy))
	return nil
}

// Handler is the HTTP handler, for tests and for embedding.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// internalPullKey marks a request of this process's own (InternalPullHandler).
type internalPullKey struct{}

// InternalPullHandler serves this process's own pulls (the scheduled cache
// warm) as user: pulls only, without credentials; pushes and deletes are
// authenticated as usual. It is never put on a listener.
func (s *Server) InternalPullHandler(user string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serveHTTP(w, r.WithContext(context.WithValue(r.Context(), internalPullKey{}, user)))
	})
}

// Serve answers on ln until Shutdown. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv, ln := s.prepare(ctx, ln)
	return serveUntilShutdown(srv, ln)
}

// prepare builds the HTTP server on ln (wrapped in TLS when configured),
// makes it the one Shutdown stops and starts the upload purge.
func (s *Server) prepare(ctx context.Context, ln net.Listener) (*http.Server, net.Listener) {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if s.tlsOn {
		srv.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"},
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return s.cert.Load(), nil
			},
		}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	if s.purge != nil {
		go s.purgeLoop()
	}
	s.log.Info("registry listening", "addr", ln.Addr().String(), "tls", s.tlsOn)
	return srv, ln
}

// serveUntilShutdown serves srv on ln; nil once Shutdown closed it.
func serveUntilShutdown(srv *http.Server, ln net.Listener) error {
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

func (s *Server) purgeLoop() {
	if s.singleton != nil {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-s.done; cancel() }()
		s.singleton(ctx, "upload-purge", PurgeInterval, func(context.Context) error {
			s.purgeOnce()
			return nil
		})
		return
	}
	t := time.NewTicker(PurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.purgeOnce()
		}
	}
}

func (s *Server) purgeOnce() {
	n, err := s.purge()
	if err != nil {
		s.log.Warn("purging idle uploads", "err", err)
	}
	if n > 0 {
		s.log.Info("purged idle uploads", "count", n)
		s.metrics.UploadsPurged.Add(float64(n))
	}
}
