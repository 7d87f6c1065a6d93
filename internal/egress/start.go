package egress

import (
	"context"
	"fmt"
	"net"

	"github.com/airlockdev/airlock/internal/policy"
)

// listenAddrs are the gateway's configured listen addresses; empty ones
// are not bound.
type listenAddrs struct{ proxy, transparent, l4 string }

// bound is one listener Start opened, with the loop that serves it.
type bound struct {
	name  string
	addr  net.Addr
	close func() error
	serve func(context.Context) error
}

// Start binds every listener the config and the policy ask for — proxy,
// transparent, l4 (TCP and UDP) and one per DNAT rule address — and
// returns once all are bound (if one fails, those already bound are closed
// and the error says which); each then serves in the background until
// Shutdown, which drains flows and tunnels until its context ends. ctx
// ending stops accepting. An error that ends a listener before Shutdown
// is delivered on Failed.
func (s *Server) Start(ctx context.Context) error {
	lns, err := s.bind(ctx)
	if err != nil {
		for _, b := range lns {
			b.close()
		}
		return err
	}
	for _, b := range lns {
		s.log.Info("gateway listening", "listener", b.name, "addr", b.addr.String())
		go func() {
			if err := b.serve(ctx); err != nil {
				select {
				case s.failed <- fmt.Errorf("%s: %w", b.name, err):
				default: // one is enough to stop airlock
				}
			}
		}()
	}
	return nil
}

// Failed receives the error that ended a listener before Shutdown (at
// most one); nothing after a clean Shutdown.
func (s *Server) Failed() <-chan error { return s.failed }

// bind opens the listeners; on error it returns those already open.
func (s *Server) bind(ctx context.Context) ([]bound, error) {
	var out []bound
	tcp := func(name string, ln net.Listener, serve func(context.Context, net.Listener) error) {
		out = append(out, bound{name, ln.Addr(), ln.Close, func(ctx context.Context) error { return serve(ctx, ln) }})
	}
	udp := func(name string, pc *net.UDPConn, serve func(context.Context, *net.UDPConn) error) {
		out = append(out, bound{name, pc.LocalAddr(), pc.Close, func(ctx context.Context) error { return serve(ctx, pc) }})
	}
	for _, l := range []struct {
		addr  string
		serve func(context.Context, net.Listener) error
	}{{s.listen.proxy, s.ServeProxy}, {s.listen.transparent, s.ServeTransparent}} {
		if l.addr == "" {
			continue
		}
		ln, err := listenTCP(ctx, l.addr)
		if err != nil {
			return out, fmt.Errorf("gateway: listen on %s: %w (set gateway.proxyListen / transparentListen)", l.addr, err)
		}
		tcp("gateway", ln, l.serve)
	}
	if s.listen.l4 != "" {
		ln, err := ListenTransparent(ctx, s.listen.l4)
		if err != nil {
			return out, fmt.Errorf("gateway: %w (set gateway.l4Listen, run as root)", err)
		}
		tcp("gateway l4", ln, s.ServeL4)
		// The same address over UDP: TPROXY hands UDP network-rule ports
		// (and udp/443) to it.
		pc, err := ListenTransparentUDP(ctx, s.listen.l4)
		if err != nil {
			return out, fmt.Errorf("gateway: %w (set gateway.l4Listen, run as root)", err)
		}
		udp("gateway l4 udp", pc, s.ServeL4UDP)
	}
	p := s.pol.Load()
	if p == nil {
		return out, nil
	}
	for _, d := range p.DNATListeners() {
		if d.Proto == policy.ProtoUDP {
			pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(d.Addr))
			if err != nil {
				return out, fmt.Errorf("gateway: UDP DNAT listen on %s: %w (is it an address of this host?)", d.Addr, err)
			}
			udp("gateway dnat udp", pc, s.ServeDNATUDP)
			continue
		}
		ln, err := net.Listen("tcp", d.Addr.String())
		if err != nil {
			return out, fmt.Errorf("gateway: DNAT listen on %s: %w (is it an address of this host?)", d.Addr, err)
		}
		tcp("gateway dnat", ln, s.ServeDNAT)
	}
	return out, nil
}
