package netclass

import "net/netip"

// Class is what kind of address an IP address is. Only Public is reached
// through a name, a redirect or a token realm unless an allowed range
// says otherwise.
type Class string

// Address classes.
const (
	Public      Class = "public"
	Unspecified Class = "unspecified" // 0.0.0.0/8, ::, and invalid addresses
	Loopback    Class = "loopback"    // 127.0.0.0/8, ::1
	LinkLocal   Class = "link_local"  // 169.254.0.0/16 (cloud metadata 169.254.169.254), fe80::/10
	Private     Class = "private"     // RFC 1918, fc00::/7 (ULA), fec0::/10
	CGNAT       Class = "cgnat"       // 100.64.0.0/10 (RFC 6598)
	Multicast   Class = "multicast"   // 224.0.0.0/4, ff00::/8, broadcast
	Special     Class = "special"     // documentation, benchmarking, reserved, translation and tunnel prefixes, IPv6 outside 2000::/3
)

// Range is one row of the table: a prefix, its class and why.
type Range struct {
	Prefix netip.Prefix
	Class  Class
	Note   string
}

// table lists every non-public range, most specific classes first. The
// IPv6 translation and tunnelling prefixes embed IPv4 addresses (NAT64,
// 6to4, Teredo, IPv4-compatible) and would let a name reach an internal
// IPv4 address through a relay, so they are special too (smokescreen's
// list, with the later IANA assignments). IPv4-mapped addresses
// (::ffff:0:0/96) have no row: Classify turns them into IPv4 first.
var table = []Range{
	{netip.MustParsePrefix("0.0.0.0/8"), Unspecified, "this network"},
	{netip.MustParsePrefix("10.0.0.0/8"), Private, "RFC 1918"},
	{netip.MustParsePrefix("100.64.0.0/10"), CGNAT, "shared address space (RFC 6598)"},
	{netip.MustParsePrefix("127.0.0.0/8"), Loopback, "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), LinkLocal, "link-local, cloud metadata 169.254.169.254"},
	{netip.MustParsePrefix("172.16.0.0/12"), Private, "RFC 1918"},
	{netip.MustParsePrefix("192.0.0.0/24"), Special, "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), Special, "documentation (TEST-NET-1)"},
	{netip.MustParsePrefix("192.88.99.0/24"), Special, "6to4 relay anycast"},
	{netip.MustParsePrefix("192.168.0.0/16"), Private, "RFC 1918"},
	{netip.MustParsePrefix("198.18.0.0/15"), Special, "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), Special, "documentation (TEST-NET-2)"},
	{netip.MustParsePrefix("203.0.113.0/24"), Special, "documentation (TEST-NET-3)"},
	{netip.MustParsePrefix("224.0.0.0/4"), Multicast, "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), Multicast, "limited broadcast"},
	{netip.MustParsePrefix("240.0.0.0/4"), Special, "reserved"},
	{netip.MustParsePrefix("::/128"), Unspecified, "unspecified"},
	{netip.MustParsePrefix("::1/128"), Loopback, "loopback"},
	{netip.MustParsePrefix("::/96"), Special, "IPv4-compatible (deprecated)"},
	{netip.MustParsePrefix("64:ff9b::/96"), Special, "NAT64"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), Special, "local-use NAT64"},
	{netip.MustParsePrefix("100::/64"), Special, "discard"},
	{netip.MustParsePrefix("2001::/32"), Special, "Teredo"},
	{netip.MustParsePrefix("2001:2::/48"), Special, "benchmarking"},
	{netip.MustParsePrefix("2001:db8::/32"), Special, "documentation"},
	{netip.MustParsePrefix("2002::/16"), Special, "6to4"},
	{netip.MustParsePrefix("3fff::/20"), Special, "documentation (RFC 9637)"},
	{netip.MustParsePrefix("fc00::/7"), Private, "unique local (ULA)"},
	{netip.MustParsePrefix("fe80::/10"), LinkLocal, "link-local"},
	{netip.MustParsePrefix("fec0::/10"), Private, "site-local (deprecated)"},
	{netip.MustParsePrefix("ff00::/8"), Multicast, "multicast"},
}

// globalUnicast6 is 2000::/3, the only IPv6 space assigned for global
// unicast; every IPv6 address outside it is Special.
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// Ranges returns a copy of the table of non-public ranges, in the order
// Classify consults it. IPv6 outside 2000::/3 is Special without a row.
func Ranges() []Range { return append([]Range(nil), table...) }

// normalize drops a zone and turns an IPv4-mapped IPv6 address into its
// IPv4 address: both would otherwise slip past netip.Prefix.Contains.
func normalize(a netip.Addr) netip.Addr { return a.WithZone("").Unmap() }

// Classify returns a's class. An IPv4-mapped IPv6 address is classified
// as its IPv4 address; a zone is ignored; an invalid address is
// Unspecified.
func Classify(a netip.Addr) Class {
	if !a.IsValid() {
		return Unspecified
	}
	a = normalize(a)
	for _, r := range table {
		if r.Prefix.Contains(a) {
			return r.Class
		}
	}
	if a.Is6() && !globalUnicast6.Contains(a) {
		return Special // unassigned or reserved
	}
	return Public
}

// Allowed returns a's class and whether a may be reached when only public
// addresses and the operator's allowed ranges may: the one decision the
// gateway's dialer, the DNS rebinding filter and the upstream client share.
func Allowed(a netip.Addr, allowed []netip.Prefix) (Class, bool) {
	c := Classify(a)
	return c, c == Public || Contains(allowed, a)
}

// Contains reports whether a (unmapped, without its zone) is inside one of
// ps.
func Contains(ps []netip.Prefix, a netip.Addr) bool {
	a = normalize(a)
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
