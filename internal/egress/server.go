package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/relay"
)

// Deps are the gateway's collaborators, injected by main.
type Deps struct {
	// Policy decides flows; SetPolicy replaces it. Nil: every flow is
	// denied (no_match) until SetPolicy.
	Policy *policy.Policy
	// Resolver resolves allowed names; nil: the system resolver.
	Resolver Resolver
	// Logger receives one decision record per flow; nil: discarded.
	Logger *slog.Logger
	// Metrics; nil: unregistered collectors.
	Metrics *Metrics
	// OriginalDst reads a transparent connection's original destination;
	// nil: SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST. Tests replace it.
	OriginalDst func(*net.TCPConn) (netip.AddrPort, error)
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Names tells which names airlock DNS answered with an address (still
	// within TTL plus grace), so FQDN network rules match exactly those
	// addresses; nil: FQDN network rules match nothing. When it is also a
	// ClusterNames, a flow its names do not allow is decided again with
	// the names the other replicas' DNS answered.
	Names NameSource
	// Hits counts every flow's final decision per rule (component
	// "gateway"); nil: not counted.
	Hits *policy.Hits
}

// NameSource is airlock DNS's name→address observations
// (dnsserver.Observations, wired by main).
type NameSource interface {
	NamesFor(addr netip.Addr, now time.Time) []dnsname.Name
}

// ClusterNames is a NameSource that can also ask the other replicas
// (dnsserver.Observations, shared through the cluster). LookupNames
// returns every name valid for addr once it learnt one, and false when it
// learnt nothing; it never waits longer than ctx (nor, for Redis, its own
// call timeout) and answers at once while Redis is away.
type ClusterNames interface {
	NameSource
	LookupNames(ctx context.Context, addr netip.Addr, now time.Time) ([]dnsname.Name, bool)
}

// remoteLookupTimeout bounds a decision's wait for the other replicas'
// names (the cluster's own call timeout is shorter).
const remoteLookupTimeout = time.Second

// Server is the gateway: the explicit proxy and the transparent listener
// share its policy, dialer, tunnel tracking and decision records.
type Server struct {
	mode        Mode
	headTimeout time.Duration
	dialer      *Dialer
	log         *slog.Logger
	m           *Metrics
	origDst     func(*net.TCPConn) (netip.AddrPort, error)
	names       NameSource
	hits        *policy.Hits
	remote      ClusterNames // names, when it can ask the other replicas
	now         func() time.Time
	pol         atomic.Pointer[policy.Policy]
	udp         udpConfig   // UDP flows (udp.go)
	listen      listenAddrs // what Start binds (start.go)
	failed      chan error  // Start's serving error, when one ends before Shutdown

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	conns     map[*net.TCPConn]struct{} // clients and upstreams of live flows
	wg        sync.WaitGroup            // one per live flow
	// relays relays established tunnels; Shutdown closes it once every
	// flow ended, and tunnels then relay with two goroutines each.
	relays *relay.Engine
	// proxyEngine serves the explicit proxy (gateway.proxyEngine); loops
	// are the event loops it runs (loop_linux.go), told by Shutdown to
	// stop accepting and, at its deadline, to close their connections.
	proxyEngine Engine
	loops       []*loop
	jobs        jobWorkers
}

// New builds a Server from a validated Config (SetDefaults applied). It
// does no I/O.
func New(cfg *Config, deps Deps) (*Server, error) {
	c := *cfg
	c.SetDefaults()
	d, err := NewDialer(&c, deps.Resolver)
	if err != nil {
		return nil, err
	}
	s := &Server{
		mode:        c.Mode,
		headTimeout: c.HeadTimeout,
		proxyEngine: c.ProxyEngine,
		dialer:      d,
		log:         deps.Logger,
		m:           deps.Metrics,
		origDst:     deps.OriginalDst,
		names:       deps.Names,
		hits:        deps.Hits,
		now:         deps.Now,
		udp:         newUDPConfig(&c),
		listen:      listenAddrs{proxy: c.ProxyListen, transparent: c.TransparentListen, l4: c.L4Listen},
		failed:      make(chan error, 1),
		listeners:   make(map[net.Listener]struct{}),
		conns:       make(map[*net.TCPConn]struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.relays = relay.New(s.log)
	if s.m == nil {
		s.m = NewMetrics(nil)
	}
	if s.origDst == nil {
		s.origDst = originalDst
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.remote, _ = deps.Names.(ClusterNames)
	s.pol.Store(deps.Policy)
	return s, nil
}

// SetPolicy swaps the policy: flows accepted from now on are decided by
// p; established tunnels are not re-decided and stay open.
func (s *Server) SetPolicy(p *policy.Policy) { s.pol.Store(p) }

// Dialer returns the gateway's outbound dialer.
func (s *Server) Dialer() *Dialer { return s.dialer }

func (s *Server) decide(f policy.Flow) policy.Decision {
	p := s.pol.Load()
	if p == nil {
		return policy.Deny(policy.ReasonNoMatch)
	}
	dst := f.Dst.Addr()
	named := s.names != nil && dst.IsValid() && !dst.IsUnspecified()
	if named {
		f.DstNames = s.names.NamesFor(dst, s.now())
	}
	d := p.Decide(f)
	if d.Allowed() || !named || s.remote == nil {
		return d
	}
	// Not allowed with what this replica's DNS answered: another replica's
	// DNS may have answered the address (once per address per second).
	ctx, cancel := context.WithTimeout(context.Background(), remoteLookupTimeout)
	names, learnt := s.remote.LookupNames(ctx, dst, s.now())
	cancel()
	if !learnt {
		return d
	}
	f.DstNames = names
	return p.Decide(f)
}

// ServeProxy runs the explicit proxy (CONNECT and absolute-form HTTP) on
// ln until ctx ends or Shutdown; it returns nil then.
func (s *Server) ServeProxy(ctx context.Context, ln net.Listener) error {
	if s.proxyEngine == EngineLoop {
		err := s.serveProxyLoops(ctx, ln)
		if !errors.Is(err, errNoLoops) {
			return err
		}
		s.log.Warn("egress explicit proxy runs a goroutine per connection", keyError, err.Error())
	}
	return s.serveDetached(ctx, ln, func(ctx context.Context, c *net.TCPConn, release func()) {
		s.handleProxy(ctx, c, nil, release)
	})
}

// ServeTransparent runs the transparent listener on ln (the target of the
// gateway host's redirect of tcp/80 and tcp/443) until ctx ends or
// Shutdown; it returns nil then.
func (s *Server) ServeTransparent(ctx context.Context, ln net.Listener) error {
	return s.serve(ctx, ln, s.handleTransparent)
}

// serve accepts on ln and runs handle on a goroutine per connection; the
// flow ends when handle returns.
func (s *Server) serve(ctx context.Context, ln net.Listener, handle func(context.Context, *net.TCPConn)) error {
	return s.serveDetached(ctx, ln, func(ctx context.Context, c *net.TCPConn, release func()) {
		defer release()
		handle(ctx, c)
	})
}

// serveDetached is serve for handlers that may outlive their goroutine: a
// handler calls release exactly once, when its flow has ended (a tunnel
// relayed by the poller ends after the handler returned).
func (s *Server) serveDetached(ctx context.Context, ln net.Listener, handle func(ctx context.Context, c *net.TCPConn, release func())) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing || ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: wait and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("egress accept failed", keyError, err.Error())
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		tc, ok := c.(*net.TCPConn)
		if !ok {
			c.Close()
			return fmt.Errorf("egress: listener %s is not TCP", ln.Addr())
		}
		if !s.track(tc) {
			tc.Close()
			return nil
		}
		go handle(ctx, tc, func() {
			s.untrack(tc)
			s.wg.Done()
		})
	}
}

// track registers a new client connection and its flow; false once
// Shutdown began.
func (s *Server) track(c *net.TCPConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// trackConn registers a connection of a live flow (an upstream, or a
// client the event loop handed over) so Shutdown can close it; the flow
// untracks it when it ends.
func (s *Server) trackConn(c *net.TCPConn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) untrack(c *net.TCPConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// Shutdown stops accepting on every listener, waits for live flows and
// tunnels to end until ctx ends, then closes what is left and returns
// ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	loops := s.loops
	s.mu.Unlock()
	for _, l := range loops {
		l.stopAccepting()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	defer s.jobs.stop()
	select {
	case <-done:
		s.relays.Close()
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	n := len(s.conns)
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	for _, l := range loops {
		n += l.closeAll()
	}
	// Closed sockets leave the relay's epoll set without an event: wake
	// the tunnels it holds so that they see the close and end.
	s.relays.Kick()
	<-done
	s.relays.Close()
	s.log.Warn("egress shutdown closed connections still open at the deadline", "connections", n)
	return ctx.Err()
}

// tunnel relays between a client and its upstream until both directions
// end and both connections are closed, counted in the active-tunnels
// gauge. The calling goroutine waits; the relay itself holds no goroutine
// while idle (see startTunnel).
func (s *Server) tunnel(f *flow, client, upstream *net.TCPConn) {
	done := make(chan struct{})
	s.startTunnel(f, client, upstream, func() { close(done) })
	<-done
}

// startTunnel starts relaying between a client and its upstream and
// returns soon (see relay.Engine.Start): on Linux an idle tunnel parks in
// the relay's poller, and a goroutine exists only while bytes move. When
// both directions ended and both connections are closed, the bytes are
// added to f and then runs.
func (s *Server) startTunnel(f *flow, client, upstream *net.TCPConn, then func()) {
	s.m.Tunnels.Inc()
	s.relays.Start(client, upstream, func(st relay.Stats) {
		s.m.Tunnels.Dec()
		f.up += st.Up
		f.down += st.Down
		then()
	})
}

// dialFor connects a decided flow (what it dials: flow.dialKind), after
// the dialer's address checks. A refusal by those checks turns the
// decision into a deny, in both modes.
func (s *Server) dialFor(ctx context.Context, f *flow) (*net.TCPConn, error) {
	var (
		c   *net.TCPConn
		err error
	)
	switch f.dialKind() {
	case dialName:
		c, f.upstream, err = s.dialer.DialName(ctx, f.name, f.port)
	case dialAddr:
		f.upstream = f.dst
		c, err = s.dialer.DialAddr(ctx, f.dst, f.dialInternal())
	default:
		err = errNothingToDial
	}
	if err != nil {
		f.dialFailed(err)
		return nil, err
	}
	s.trackConn(c)
	return c, nil
}

// What a decided flow dials (flow.dialKind).
const (
	dialNothing = iota
	dialName    // the name, resolved
	dialAddr    // the destination address
)

var errNothingToDial = errors.New("no name and no address to dial")

// dialKind says what a decided flow dials: an allowed application flow (or
// a report-mode flow with a name) its name, resolved, never the client's
// original destination; a network or DNAT allow the destination the rule
// matched; a report-mode flow without a name its original destination.
func (f *flow) dialKind() int {
	switch {
	case !f.name.IsZero() && (f.decision.Type != policy.TypeNetwork && f.decision.Type != policy.TypeDNAT || !f.dst.Addr().IsValid()):
		return dialName
	case f.dst.Addr().IsValid():
		return dialAddr
	}
	return dialNothing
}

// dialInternal says whether f's destination address must pass the
// internal-address check: it was not matched by an allowing rule.
func (f *flow) dialInternal() bool { return !f.decision.Allowed() }

// dialFailed records a failed dial on f (the upstream tried stays in the
// record when the dial itself failed). A refusal by the dialer's address
// checks turns the decision into a deny (keeping the rule that matched), in
// both modes: report mode never lets an internal address through.
func (f *flow) dialFailed(err error) {
	var deny *DenyError
	if errors.As(err, &deny) {
		d := policy.Deny(deny.Reason)
		d.Type, d.Group, d.Collection, d.Rule = f.decision.Type, f.decision.Group, f.decision.Collection, f.decision.Rule
		f.decision = d
		f.wouldDeny = false
		f.upstream = netip.AddrPort{} // nothing was dialled
	}
	f.err = err
}
