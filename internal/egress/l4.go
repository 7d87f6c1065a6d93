package egress

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/airlockdev/airlock/internal/policy"
)

const listenerL4 = "l4"

// ListenTransparent opens a TCP listener with IP_TRANSPARENT (and
// IPV6_TRANSPARENT), the target of a TPROXY rule: accepted connections keep
// their original destination as their local address.
func ListenTransparent(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if network == "tcp6" || network == "tcp" {
				// A dual-stack or IPv6 socket: both options, ignoring the
				// one that does not apply.
				e6 := unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
				e4 := unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
				if e4 != nil && e6 != nil {
					serr = e4
				}
				return
			}
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("l4 listen %s with IP_TRANSPARENT: %w (needs CAP_NET_ADMIN)", addr, err)
	}
	return ln, nil
}

// ServeL4 forwards TPROXY-intercepted TCP connections that a network rule
// allows to their original destination, until ctx ends or Shutdown.
func (s *Server) ServeL4(ctx context.Context, ln net.Listener) error {
	port := addrPortOf(ln.Addr()).Port()
	return s.serve(ctx, ln, func(ctx context.Context, c *net.TCPConn) { s.handleL4(ctx, c, port) })
}

func (s *Server) handleL4(ctx context.Context, c *net.TCPConn, lport uint16) {
	dst := addrPortOf(c.LocalAddr()) // the original destination (TPROXY)
	if dst.Port() == lport {
		// Not intercepted: a connection to the listener itself would loop.
		s.m.Refused.WithLabelValues("loop").Inc()
		return
	}
	f := &flow{listener: listenerL4, start: s.now(), src: addrPortOf(c.RemoteAddr()), dst: dst, port: dst.Port()}
	defer s.finish(f)
	f.decision = s.decide(policy.Flow{Src: f.src.Addr(), Dst: dst, Proto: policy.ProtoTCP})
	if !f.decision.Allowed() {
		if s.mode != ModeReport {
			return
		}
		f.wouldDeny = true
	}
	up, err := s.dialFor(ctx, f)
	if err != nil {
		return
	}
	defer s.untrack(up)
	s.tunnel(f, c, up)
}
