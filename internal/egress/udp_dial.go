package egress

import (
	"fmt"
	"net"
	"net/netip"
)

// DialUDP opens a UDP socket connected to dst after Check(dst, internal),
// bound to the next source address of dst's family when
// gateway.sourceAddresses has one (the same pool TCP uses). A connected
// socket receives only dst's datagrams, so nothing else can inject
// replies into the flow.
func (d *Dialer) DialUDP(dst netip.AddrPort, internal bool) (*net.UDPConn, error) {
	dst = udpAddrPort(dst)
	if reason, class := d.Check(dst.Addr(), internal); reason != "" {
		return nil, &DenyError{Reason: reason, Addr: dst.Addr(), Class: class}
	}
	var laddr *net.UDPAddr
	if src := d.source(dst.Addr()); src.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	network := "udp4"
	if dst.Addr().Is6() {
		network = "udp6"
	}
	c, err := net.DialUDP(network, laddr, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return nil, fmt.Errorf("dialing udp %s: %w", dst, err)
	}
	return c, nil
}
