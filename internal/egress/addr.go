package egress

import "net/netip"

// Class is what kind of address a destination is. Only ClassPublic is
// dialled for a name without an allowedInternalRanges entry.
type Class string

// Address classes.
const (
	ClassPublic      Class = "public"
	ClassUnspecified Class = "unspecified" // 0.0.0.0/8, ::
	ClassLoopback    Class = "loopback"    // 127.0.0.0/8, ::1
	ClassLinkLocal   Class = "link_local"  // 169.254.0.0/16 (cloud metadata 169.254.169.254), fe80::/10
	ClassPrivate     Class = "private"     // RFC 1918, fc00::/7 (ULA), fec0::/10
	ClassCGNAT       Class = "cgnat"       // 100.64.0.0/10 (RFC 6598)
	ClassMulticast   Class = "multicast"   // 224.0.0.0/4, ff00::/8, broadcast
	ClassSpecial     Class = "special"     // documentation, benchmarking, reserved, translation and tunnel prefixes
)

// specialRanges lists every non-public range, most specific classes
// first. The IPv6 translation and tunnelling prefixes embed IPv4
// addresses (NAT64, 6to4, Teredo) and would let a name reach an internal
// IPv4 address through a relay, so they are special too (smokescreen's
// list).
var specialRanges = []struct {
	p netip.Prefix
	c Class
}{
	{netip.MustParsePrefix("0.0.0.0/8"), ClassUnspecified},
	{netip.MustParsePrefix("10.0.0.0/8"), ClassPrivate},
	{netip.MustParsePrefix("100.64.0.0/10"), ClassCGNAT},
	{netip.MustParsePrefix("127.0.0.0/8"), ClassLoopback},
	{netip.MustParsePrefix("169.254.0.0/16"), ClassLinkLocal},
	{netip.MustParsePrefix("172.16.0.0/12"), ClassPrivate},
	{netip.MustParsePrefix("192.0.0.0/24"), ClassSpecial},    // IETF protocol assignments
	{netip.MustParsePrefix("192.0.2.0/24"), ClassSpecial},    // TEST-NET-1
	{netip.MustParsePrefix("192.88.99.0/24"), ClassSpecial},  // 6to4 relay anycast
	{netip.MustParsePrefix("192.168.0.0/16"), ClassPrivate},  //
	{netip.MustParsePrefix("198.18.0.0/15"), ClassSpecial},   // benchmarking
	{netip.MustParsePrefix("198.51.100.0/24"), ClassSpecial}, // TEST-NET-2
	{netip.MustParsePrefix("203.0.113.0/24"), ClassSpecial},  // TEST-NET-3
	{netip.MustParsePrefix("224.0.0.0/4"), ClassMulticast},
	{netip.MustParsePrefix("255.255.255.255/32"), ClassMulticast}, // limited broadcast
	{netip.MustParsePrefix("240.0.0.0/4"), ClassSpecial},          // reserved
	{netip.MustParsePrefix("::/128"), ClassUnspecified},
	{netip.MustParsePrefix("::1/128"), ClassLoopback},
	{netip.MustParsePrefix("::ffff:0:0/96"), ClassSpecial}, // never reached: addresses are unmapped first
	{netip.MustParsePrefix("64:ff9b::/96"), ClassSpecial},  // NAT64
	{netip.MustParsePrefix("64:ff9b:1::/48"), ClassSpecial},
	{netip.MustParsePrefix("100::/64"), ClassSpecial},      // discard
	{netip.MustParsePrefix("2001::/32"), ClassSpecial},     // Teredo
	{netip.MustParsePrefix("2001:db8::/32"), ClassSpecial}, // documentation
	{netip.MustParsePrefix("2002::/16"), ClassSpecial},     // 6to4
	{netip.MustParsePrefix("fc00::/7"), ClassPrivate},
	{netip.MustParsePrefix("fe80::/10"), ClassLinkLocal},
	{netip.MustParsePrefix("fec0::/10"), ClassPrivate}, // site-local (deprecated)
	{netip.MustParsePrefix("ff00::/8"), ClassMulticast},
}

// globalUnicast6 is 2000::/3, the only IPv6 space assigned for global
// unicast.
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// Classify returns a's class. IPv4-mapped IPv6 addresses are classified
// as IPv4; an invalid address is ClassUnspecified.
func Classify(a netip.Addr) Class {
	if !a.IsValid() {
		return ClassUnspecified
	}
	a = a.Unmap()
	for _, r := range specialRanges {
		if r.p.Contains(a) {
			return r.c
		}
	}
	if a.Is6() && !globalUnicast6.Contains(a) {
		return ClassSpecial // outside global unicast: unassigned or reserved
	}
	return ClassPublic
}
