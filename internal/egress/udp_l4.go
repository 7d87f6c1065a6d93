package egress

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airlockdev/airlock/internal/policy"
)

const listenerL4UDP = "l4_udp"

// ListenTransparentUDP opens the UDP side of the L4 listener, the target of
// the TPROXY rule for UDP network-rule ports: IP_TRANSPARENT (and
// IPV6_TRANSPARENT) so intercepted datagrams are delivered to it, and
// IP_RECVORIGDSTADDR (IPV6_RECVORIGDSTADDR) so each datagram carries its
// original destination. Needs CAP_NET_ADMIN.
func ListenTransparentUDP(ctx context.Context, addr string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		return controlSockopts(c, network, [][3]int{
			{unix.SOL_IP, unix.IP_TRANSPARENT, 1},
			{unix.SOL_IP, unix.IP_RECVORIGDSTADDR, 1},
			{unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1},
			{unix.SOL_IPV6, unix.IPV6_RECVORIGDSTADDR, 1},
		})
	}}
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("l4 udp listen %s with IP_TRANSPARENT: %w (needs CAP_NET_ADMIN)", addr, err)
	}
	return pc.(*net.UDPConn), nil
}

// controlSockopts sets socket options {level, option, value} on a socket
// being created: on an IPv4 socket only the SOL_IP ones; on an IPv6 socket
// (dual-stack or not) the SOL_IPV6 ones must succeed and the SOL_IP ones
// (for IPv4-mapped traffic) are set where the kernel takes them.
func controlSockopts(c syscall.RawConn, network string, opts [][3]int) error {
	v6 := network == "udp6" || network == "tcp6"
	var serr error
	err := c.Control(func(fd uintptr) {
		for _, o := range opts {
			if !v6 && o[0] == unix.SOL_IPV6 {
				continue
			}
			e := unix.SetsockoptInt(int(fd), o[0], o[1], o[2])
			if e != nil && (!v6 || o[0] != unix.SOL_IP) && serr == nil {
				serr = fmt.Errorf("setsockopt %d/%d: %w", o[0], o[1], e)
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// ServeL4UDP relays TPROXY-intercepted UDP that a network rule allows to
// its original destination until ctx ends or Shutdown; pc comes from
// ListenTransparentUDP. Replies reach the client from the original
// destination's address and port (see listenReply).
func (s *Server) ServeL4UDP(ctx context.Context, pc *net.UDPConn) error {
	lport := udpAddrPort(pc.LocalAddr().(*net.UDPAddr).AddrPort()).Port()
	t := s.newUDPTable(listenerL4UDP, s.decideL4UDP, s.connectL4UDP)
	return s.serveUDP(ctx, pc, t, func(src netip.AddrPort, oob []byte) (netip.AddrPort, bool) {
		dst, ok := parseOrigDst(oob)
		switch {
		case !ok:
			s.m.UDPDropped.WithLabelValues(udpDropOrigDst).Inc()
			return dst, false
		case dst.Port() == lport:
			// Not intercepted: sent to the listener itself.
			s.m.UDPDropped.WithLabelValues(udpDropLoop).Inc()
			return dst, false
		}
		return dst, true
	})
}

// serveUDP reads datagrams from pc and hands each to t, its destination
// given by dstOf (from the control messages), until pc is closed; then it
// ends every flow of t.
func (s *Server) serveUDP(ctx context.Context, pc *net.UDPConn, t *udpTable, dstOf func(src netip.AddrPort, oob []byte) (netip.AddrPort, bool)) error {
	unregister, ok := s.registerUDP(pc)
	if !ok {
		pc.Close()
		return nil
	}
	defer unregister()
	growReadBuffer(pc)
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	defer t.closeAll()
	buf := make([]byte, udpBufSize)
	oob := make([]byte, 256)
	var backoff time.Duration
	for {
		n, oobn, flags, src, err := pc.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			// ICMP errors and the like: note, wait a little, go on.
			backoff = min(max(2*backoff, time.Millisecond), 100*time.Millisecond)
			s.log.Warn("egress udp read failed", keyError, err.Error())
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if flags&unix.MSG_TRUNC != 0 {
			s.m.UDPDropped.WithLabelValues(udpDropOversized).Inc()
			continue
		}
		src = udpAddrPort(src)
		dst, ok := dstOf(src, oob[:oobn])
		if !ok {
			continue
		}
		t.datagram(udpKey{src: src, dst: udpAddrPort(dst)}, buf[:n])
	}
}

// udpReadBuffer is the receive buffer each UDP listener asks for, so a
// burst (a flood from one client, many clients at once) waits for the
// listener instead of being dropped by the kernel before anyone sees it,
// other clients' datagrams with it.
const udpReadBuffer = 4 << 20

// growReadBuffer sets pc's receive buffer to udpReadBuffer: with
// SO_RCVBUFFORCE where the process may (CAP_NET_ADMIN, which the L4
// listener needs anyway), else with SO_RCVBUF, which the kernel caps at
// net.core.rmem_max. A failure leaves the default buffer.
func growReadBuffer(pc *net.UDPConn) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return
	}
	var forced error
	if err := rc.Control(func(fd uintptr) {
		forced = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, udpReadBuffer)
	}); err != nil || forced != nil {
		pc.SetReadBuffer(udpReadBuffer)
	}
}

// decideL4UDP decides an intercepted UDP flow with the network rules
// (FQDN ones through airlock DNS's observations, as for TCP).
func (s *Server) decideL4UDP(f *flow) bool {
	f.decision = s.decide(policy.Flow{Src: f.src.Addr(), Dst: f.dst, Proto: policy.ProtoUDP})
	if !f.decision.Allowed() {
		if s.mode != ModeReport {
			return false
		}
		f.wouldDeny = true
	}
	return true
}

// connectL4UDP opens the upstream and reply sockets of an intercepted UDP
// flow that may go on.
func (s *Server) connectL4UDP(f *flow) (up, reply *net.UDPConn, own bool) {
	up = s.dialUDPFor(f, f.dst)
	if up == nil {
		return nil, nil, false
	}
	reply, err := listenReply(f.dst)
	if err != nil {
		up.Close()
		f.err = err
		f.upstream = netip.AddrPort{}
		return nil, nil, false
	}
	return up, reply, true
}

// listenReply opens the socket replies to an intercepted flow are sent
// from: bound to the original destination (a foreign address, allowed by
// IP_TRANSPARENT), so the client sees the reply come from the address and
// port it sent to. IP_PKTINFO / IPV6_PKTINFO on the listener cannot do
// this: they set the source address only, and the port would be the
// listener's. SO_REUSEADDR lets several clients' flows to one destination
// bind it at once. The socket is not connected, so TPROXY's lookup of an
// established socket passes it over and the client's datagrams keep coming
// to the listener.
func listenReply(dst netip.AddrPort) (*net.UDPConn, error) {
	network := "udp4"
	opts := [][3]int{{unix.SOL_SOCKET, unix.SO_REUSEADDR, 1}, {unix.SOL_IP, unix.IP_TRANSPARENT, 1}}
	if dst.Addr().Is6() {
		network = "udp6"
		opts = [][3]int{{unix.SOL_SOCKET, unix.SO_REUSEADDR, 1}, {unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1}}
	}
	lc := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, o := range opts {
				if e := unix.SetsockoptInt(int(fd), o[0], o[1], o[2]); e != nil && serr == nil {
					serr = fmt.Errorf("setsockopt %d/%d: %w", o[0], o[1], e)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), network, dst.String())
	if err != nil {
		return nil, fmt.Errorf("udp reply socket on %s: %w", dst, err)
	}
	return pc.(*net.UDPConn), nil
}

// parseOrigDst returns the original destination from a datagram's control
// messages: IP_ORIGDSTADDR (a sockaddr_in) or IPV6_ORIGDSTADDR (a
// sockaddr_in6). The port is in network byte order in both.
func parseOrigDst(oob []byte) (netip.AddrPort, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.AddrPort{}, false
	}
	for _, m := range msgs {
		d := m.Data
		switch {
		case m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_ORIGDSTADDR && len(d) >= unix.SizeofSockaddrInet4:
			if binary.NativeEndian.Uint16(d[0:2]) != unix.AF_INET {
				continue
			}
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte(d[4:8])), binary.BigEndian.Uint16(d[2:4])), true
		case m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_ORIGDSTADDR && len(d) >= unix.SizeofSockaddrInet6:
			if binary.NativeEndian.Uint16(d[0:2]) != unix.AF_INET6 {
				continue
			}
			a := netip.AddrFrom16([16]byte(d[8:24])).Unmap()
			return netip.AddrPortFrom(a, binary.BigEndian.Uint16(d[2:4])), true
		}
	}
	return netip.AddrPort{}, false
}
