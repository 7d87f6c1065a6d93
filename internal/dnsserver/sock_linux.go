package dnsserver

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// enablePktinfo asks the kernel for the destination address of each
// datagram (IP_PKTINFO, IPV6_RECVPKTINFO) on a wildcard-bound socket; an
// error only when neither family accepts it.
func enablePktinfo(conn *net.UDPConn) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("dns udp socket: %w", err)
	}
	var err4, err6 error
	if err := rc.Control(func(fd uintptr) {
		err4 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		err6 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
	}); err != nil {
		return fmt.Errorf("dns udp socket: %w", err)
	}
	if err4 != nil && err6 != nil {
		return fmt.Errorf("dns udp socket: IP_PKTINFO: %w", err4)
	}
	return nil
}

// replyOOB turns the control messages of a received datagram into the one
// that sends the answer from the address the query was sent to; nil when
// they carry no destination.
func replyOOB(oob []byte) []byte {
	if len(oob) == 0 {
		return nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			var pi unix.Inet6Pktinfo
			copy(pi.Addr[:], m.Data[:16])
			return unix.PktInfo6(&pi)
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
			var pi unix.Inet4Pktinfo
			copy(pi.Spec_dst[:], m.Data[8:12]) // the header's destination (ipi_addr)
			return unix.PktInfo4(&pi)
		}
	}
	return nil
}

// reusePort sets SO_REUSEPORT on a socket before it is bound, so that
// several sockets serve one address (dns.readers).
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_REUSEPORT: %w", serr)
	}
	return nil
}
