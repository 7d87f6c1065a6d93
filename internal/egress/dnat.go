package egress

import (
	"context"
	"net"

	"github.com/airlockdev/airlock/internal/policy"
)

const listenerDNAT = "dnat"

// ServeDNAT accepts TCP connections on a DNAT rule's listen address (ln
// must be bound to policy.DNATListeners' address, or a wildcard with that
// port) until ctx ends or Shutdown. Each connection is forwarded to the
// first matching DNAT rule's translated address when its source is in the
// rule's sourceAddresses, and closed otherwise (the Azure Firewall DNAT rule
// with an allowlist, e.g. API server authorized IP ranges).
func (s *Server) ServeDNAT(ctx context.Context, ln net.Listener) error {
	return s.serve(ctx, ln, s.handleDNAT)
}

func (s *Server) handleDNAT(ctx context.Context, c *net.TCPConn) {
	listen := addrPortOf(c.LocalAddr())
	f := &flow{listener: listenerDNAT, start: s.now(), src: addrPortOf(c.RemoteAddr()), dst: listen, port: listen.Port()}
	defer s.finish(f)
	p := s.pol.Load()
	if p == nil {
		f.decision = policy.Deny(policy.ReasonNoMatch)
		return
	}
	to, d := p.DNAT(listen, policy.ProtoTCP, f.src.Addr())
	f.decision = d
	if !d.Allowed() {
		// Report mode cannot help: without a matching rule there is no
		// translated address to forward to.
		return
	}
	f.upstream = to
	// The translated address is the operator's explicit choice (often a
	// private one): no internal-address check.
	up, err := s.dialer.DialAddr(ctx, to, false)
	if err != nil {
		f.err = err
		return
	}
	s.trackConn(up)
	defer s.untrack(up)
	s.tunnel(f, c, up)
}
