package dnsserver

import (
	"net/netip"

	"github.com/airlockdev/airlock/internal/netclass"
)

// rebinding reports whether an allowed public name must not be answered
// with a (DNS rebinding): a is not public in airlock's one address
// classification (netclass, which the gateway's dialer and the registry's
// upstream client also use) and gateway.allowedInternalRanges does not
// hold it.
func (s *Server) rebinding(a netip.Addr) bool {
	_, ok := netclass.Allowed(a, s.internal)
	return !ok
}
