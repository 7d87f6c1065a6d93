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
	t := s.newUDPTable(listenerDNATUDP, s.decideDNATUDP, func(f *flow) (up, reply *net.UDPConn, own bool) {
		return s.connectDNATUDP(f, pc)
	})
	return s.serveUDP(ctx, pc, t, func(netip.AddrPort, []byte) (netip.AddrPort, bool) { return listen, true })
}

// decideDNATUDP decides a flow with the DNAT rules; an allowed flow's
// translated address is left in f.upstream for connectDNATUDP.
func (s *Server) decideDNATUDP(f *flow) bool {
	p := s.pol.Load()
	if p == nil {
		f.decision = policy.Deny(policy.ReasonNoMatch)
		return false
	}
	to, d := p.DNAT(f.dst, policy.ProtoUDP, f.src.Addr())
	f.decision = d
	if !d.Allowed() {
		// Report mode cannot help: without a matching rule there is no
		// translated address to send to.
		return false
	}
	f.upstream = to
	return true
}

// connectDNATUDP opens the upstream socket of an allowed DNAT flow; its
// replies go out of the listener pc.
func (s *Server) connectDNATUDP(f *flow, pc *net.UDPConn) (up, reply *net.UDPConn, own bool) {
	// The translated address is the operator's explicit choice (often a
	// private one): no internal-address check, as for TCP DNAT.
	if up = s.dialUDPFor(f, f.upstream); up == nil {
		return nil, nil, false
	}
	return up, pc, false
}
