package netclass

import (
	"fmt"
	"net/netip"
)

// ParseRange parses one entry of an allowed-ranges list: a CIDR such as
// 10.0.0.0/8 (host bits must be zero) or a single address. An
// IPv4-mapped form (::ffff:10.0.0.0/104) becomes its IPv4 prefix, as
// Classify and Contains see addresses.
func ParseRange(s string) (netip.Prefix, error) {
	p, why := parseRange(s)
	if why != "" {
		sep := ": "
		if why[0] == 'h' { // "has host bits set …" reads on from the value
			sep = " "
		}
		return netip.Prefix{}, fmt.Errorf("%q%s%s", s, sep, why)
	}
	return p, nil
}

// parseRange is ParseRange returning why s is refused, without s.
func parseRange(s string) (netip.Prefix, string) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, "an address with a zone is not accepted"
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), ""
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, "want a CIDR such as 10.0.0.0/8 or an IP address"
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Sprintf("has host bits set; did you mean %s?", p.Masked())
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, ""
}
