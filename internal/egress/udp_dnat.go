package egress

import (
	"context"
	"net"
	"net/netip"

	"github.com/airlockdev/airlock/internal/policy"
)

const listenerDNATUDP = "dnat_udp"

// ServeDNATUDP relays UDP arriving on a DNAT rule's listen address (pc
// must be bound to policy.DNATListeners' address for UDP) until ctx ends
// or Shutdown. Each client source is a flow: when the first matching DNAT
// rule lists the source in its sourceAddresses, datagrams go to the rule's
// translated address and its replies come back from the listen address;
// any other source's datagrams are dropped. Records and metrics are as
// for TCP DNAT (listener dnat_udp, proto udp).
func (s *Server) ServeDNATUDP(ctx context.Context, pc *net.UDPConn) error {
	listen := udpAddrPort(pc.LocalAddr().(*net.UDPAddr).AddrPort())
	t := s.newUDPTable(listenerDNATUDP, func(f *flow) (up, reply *net.UDPConn, own bool) {
		return s.openDNATUDP(f, pc)
	})
	return s.serveUDP(ctx, pc, t, func(netip.AddrPort, []byte) (netip.AddrPort, bool) { return listen, true })
}

func (s *Server) openDNATUDP(f *flow, pc *net.UDPConn) (up, reply *net.UDPConn, own bool) {
	p := s.pol.Load()
	if p == nil {
		f.decision = policy.Deny(policy.ReasonNoMatch)
		return nil, nil, false
	}
	to, d := p.DNAT(f.dst, policy.ProtoUDP, f.src.Addr())
	f.decision = d
	if !d.Allowed() {
		// Report mode cannot help: without a matching rule there is no
		// translated address to send to.
		return nil, nil, false
	}
	// The translated address is the operator's explicit choice (often a
	// private one): no internal-address check, as for TCP DNAT.
	if up = s.dialUDPFor(f, to); up == nil {
		return nil, nil, false
	}
	return up, pc, false
}
