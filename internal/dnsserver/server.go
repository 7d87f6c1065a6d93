package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/policy"
)

// Deps are what the DNS server gets from the rest of airlock.
type Deps struct {
	// Logger receives decision records and errors. Nil: discarded.
	Logger *slog.Logger
	// Registerer receives the airlock_dnsserver_* metrics. Nil: not
	// registered.
	Registerer prometheus.Registerer
	// Policy decides which names are answered; replace it with SetPolicy.
	// Nil: only private zones and allowNames are answered.
	Policy *policy.Policy
	// AllowedInternalRanges is gateway.allowedInternalRanges: special
	// addresses an allowed name may resolve to.
	AllowedInternalRanges []netip.Prefix
	// AllowIPv6 is gateway.allowIPv6: AAAA answers are stripped unless set.
	AllowIPv6 bool
	// Now is the clock (nil: time.Now). Tests inject one.
	Now func() time.Time
	// Observations receives every allowed A/AAAA answer (nil: a new store of
	// cfg.ObservationEntries pairs, see Server.Observations).
	Observations *Observations
	// Hits counts every question's decision per rule (component "dns"),
	// whether or not its record is logged; nil: not counted.
	Hits *policy.Hits
}

// Server is the DNS server. Create it with New; it does no I/O until
// ListenAndServe or Serve.
type Server struct {
	cfg        Config
	log        *slog.Logger
	metrics    *Metrics
	now        func() time.Time
	policy     atomic.Pointer[policySnap]
	zones      *zones
	allowNames []dnsname.Pattern
	qtypes     map[uint16]bool
	blocked    int
	internal   []netip.Prefix
	allowIPv6  bool
	cache      *answerCache
	fwd        *forwarders
	flight     singleflight.Group
	obs        *Observations
	hits       *policy.Hits
	report     bool // dns.mode report
	sampler    sampler
	fast       *fastCache
	upstream   *upstreamPool
	readers    int // UDP sockets on dns.listen (Config.Readers resolved)

	mu      sync.Mutex
	servers []*dns.Server
	fronts  []*udpFront
	addr    net.Addr
	failed  chan error // Start's serving error, when it ends before Shutdown
}

var _ dns.Handler = (*Server)(nil)

// New checks cfg (which should have had SetDefaults and Validate) and
// builds a server. It does no I/O.
func New(cfg Config, deps Deps) (*Server, error) {
	var problems []string
	cfg.Validate(func(path, msg string) { problems = append(problems, "dns."+path+": "+msg) })
	if len(problems) > 0 {
		return nil, fmt.Errorf("dns config: %s", strings.Join(problems, "; "))
	}
	zs, err := newZones(cfg.PrivateZones)
	if err != nil {
		return nil, fmt.Errorf("dns config: %w", err)
	}
	s := &Server{
		cfg:       cfg,
		log:       deps.Logger,
		metrics:   NewMetrics(deps.Registerer),
		now:       deps.Now,
		zones:     zs,
		qtypes:    map[uint16]bool{},
		blocked:   blockedRcodes[cfg.BlockedRcode],
		internal:  deps.AllowedInternalRanges,
		allowIPv6: deps.AllowIPv6,
		obs:       deps.Observations,
		hits:      deps.Hits,
		report:    cfg.Mode == ModeReport,
		failed:    make(chan error, 1),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.obs == nil {
		s.obs = NewObservations(cfg.ObservationEntries)
	}
	s.obs.onCount = func(n int) { s.metrics.Observations.Set(float64(n)) }
	for _, p := range cfg.AllowNames {
		pat, _ := dnsname.ParsePattern(p) // checked by Validate
		s.allowNames = append(s.allowNames, pat)
	}
	for _, t := range cfg.AllowQueryTypes {
		s.qtypes[dns.StringToType[strings.ToUpper(t)]] = true
	}
	entries := cfg.CacheEntries
	if entries <= 0 {
		entries = DefaultCacheEntries
	}
	s.cache = newAnswerCache(entries, cfg.StaleFor)
	s.readers = cfg.Readers
	if s.readers <= 0 {
		s.readers = runtime.GOMAXPROCS(0)
	}
	s.readers = min(s.readers, maxReaders)
	// Several sockets per reader: a forwarder that spreads its own threads
	// over SO_REUSEPORT sockets (unbound, for one) hashes each of ours to
	// one thread, so a socket per reader could leave its threads idle.
	s.upstream = newUpstreamPool(max(upstreamSlotsPerReader*s.readers, minUpstreamSlots), s.metrics.Retransmits)
	s.fwd = newForwarders(cfg.Forwarders, cfg.ForwarderTimeout, s.upstream.exchange, s.now, s.metrics)
	s.fast = newFastCache(entries)
	s.policy.Store(&policySnap{p: deps.Policy})
	return s, nil
}

// policySnap is one policy in force. Each SetPolicy stores a new snapshot,
// so its address identifies the policy generation: a fast-path answer
// decided under another snapshot is never replayed.
type policySnap struct{ p *policy.Policy }

// SetPolicy atomically replaces the policy (on reload) and drops every
// answer the fast path had decided under the old one; queries in flight
// finish with the one they started with.
func (s *Server) SetPolicy(p *policy.Policy) {
	s.policy.Store(&policySnap{p: p})
	s.fast.clear()
}

// Observations returns the name→address store the gateway reads.
func (s *Server) Observations() *Observations { return s.obs }

// Metrics returns the server's collectors.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Addr returns the address being served once Serve or ListenAndServe has
// bound it, else nil.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ListenAndServe binds cfg.Listen over UDP (dns.readers sockets) and TCP
// (the same port; with port 0, a free one) and serves until ctx ends or
// Shutdown is called.
func (s *Server) ListenAndServe(ctx context.Context) error {
	pcs, ln, err := listenReaders(s.cfg.Listen, s.readers)
	if err != nil {
		return err
	}
	return s.serve(ctx, pcs, ln)
}

// listenReaders binds TCP and n UDP sockets on the same address, the UDP
// ones with SO_REUSEPORT when n > 1 (the kernel then spreads datagrams over
// them by the client's address and port); with port 0 it retries a few
// times until all get the same free port.
func listenReaders(addr string, n int) ([]net.PacketConn, net.Listener, error) {
	if n <= 1 {
		pc, ln, err := listenBoth(addr)
		if err != nil {
			return nil, nil, err
		}
		return []net.PacketConn{pc}, ln, nil
	}
	lc := net.ListenConfig{Control: reusePort}
	var lastErr error
	for range 10 {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns listen tcp %s: %w", addr, err)
		}
		var pcs []net.PacketConn
		for range n {
			pc, err := lc.ListenPacket(context.Background(), "udp", ln.Addr().String())
			if err != nil {
				lastErr = err
				break
			}
			pcs = append(pcs, pc)
		}
		if len(pcs) == n {
			return pcs, ln, nil
		}
		for _, pc := range pcs {
			pc.Close()
		}
		ln.Close()
		if _, port, _ := net.SplitHostPort(addr); port != "0" {
			break
		}
	}
	return nil, nil, fmt.Errorf("dns listen udp %s (%d sockets, SO_REUSEPORT): %w", addr, n, lastErr)
}

// listenBoth binds UDP and TCP on the same address; with port 0 it retries
// a few times until both get the same free port.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 10 {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns listen tcp %s: %w", addr, err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			return pc, ln, nil
		}
		ln.Close()
		lastErr = err
		if _, port, _ := net.SplitHostPort(addr); port != "0" {
			break
		}
	}
	return nil, nil, fmt.Errorf("dns listen udp %s: %w", addr, lastErr)
}

// Serve answers DNS on pc (UDP) and ln (TCP) until ctx ends or Shutdown is
// called; it returns nil after a clean shutdown. Either may be nil. When
// ctx ends, serving stops without waiting for queries in flight; Shutdown
// waits for them until its own context ends.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, ln net.Listener) error {
	var pcs []net.PacketConn
	if pc != nil {
		pcs = []net.PacketConn{pc}
	}
	return s.serve(ctx, pcs, ln)
}

func (s *Server) serve(ctx context.Context, pcs []net.PacketConn, ln net.Listener) error {
	errc, err := s.start(pcs, ln)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		s.Shutdown(ctx) // ctx has ended: stop at once
		return nil
	case err := <-errc:
		return err
	}
}

// start serves every UDP socket of pcs and ln in the background and
// returns once all serve. errc receives once, when serving ended on its
// own (the error, nil after Shutdown).
func (s *Server) start(pcs []net.PacketConn, ln net.Listener) (<-chan error, error) {
	var srvs []*dns.Server
	started := make(chan struct{}, len(pcs)+1)
	notify := func() { started <- struct{}{} }
	var fronts []*udpFront
	for _, pc := range pcs {
		udpPC := pc
		if conn, ok := pc.(*net.UDPConn); ok {
			f, err := newUDPFront(s, conn)
			if err != nil {
				return nil, fmt.Errorf("dns serve: %w", err)
			}
			fronts, udpPC = append(fronts, f), f.pc
		}
		srvs = append(srvs, &dns.Server{PacketConn: udpPC, Handler: s, UDPSize: upstreamUDPSize, NotifyStartedFunc: notify})
	}
	if ln != nil {
		srvs = append(srvs, &dns.Server{Listener: ln, Handler: s, NotifyStartedFunc: notify,
			ReadTimeout: 5 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }})
	}
	if len(srvs) == 0 {
		return nil, errors.New("dns serve: no listener")
	}
	s.mu.Lock()
	s.servers = srvs
	s.fronts = fronts
	if len(pcs) > 0 {
		s.addr = pcs[0].LocalAddr()
	} else {
		s.addr = ln.Addr()
	}
	s.mu.Unlock()
	errc := make(chan error, len(srvs))
	for _, f := range fronts {
		go f.run()
	}
	for _, srv := range srvs {
		go func() { errc <- srv.ActivateAndServe() }()
	}
	for range srvs {
		select {
		case <-started:
		case err := <-errc:
			s.Shutdown(context.Background())
			return nil, fmt.Errorf("dns serve: %w", err)
		}
	}
	s.log.Info("dns serving", "addr", s.Addr().String(), "udp_readers", len(pcs), "forwarders", s.cfg.Forwarders)
	ended := make(chan error, 1)
	go func() {
		if err := <-errc; err != nil {
			s.Shutdown(context.Background())
			ended <- fmt.Errorf("dns serve: %w", err)
			return
		}
		ended <- nil
	}()
	return ended, nil
}

// Shutdown stops every listener and waits (until ctx ends) for queries in
// flight, then closes the sockets to the forwarders (LookupNetIP opens
// new ones if asked). Calling it before Serve, or twice, is harmless.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srvs := s.servers
	s.servers = nil
	s.fronts = nil
	s.mu.Unlock()
	var errs []error
	for _, srv := range srvs {
		if err := srv.ShutdownContext(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if len(srvs) > 0 {
		s.upstream.closeAll()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dns shutdown: %w", err)
	}
	return nil
}
