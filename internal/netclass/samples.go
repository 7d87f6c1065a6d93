package netclass

import "net/netip"

// Samples returns addresses that exercise the whole table: the first,
// middle and last address of every row, IPv4-mapped forms, IPv6 outside
// 2000::/3, and public IPv4 and IPv6 addresses. Tests of the packages
// that consult the classification use them to show they decide as
// Classify does; nothing dials them.
func Samples() []netip.Addr {
	var out []netip.Addr
	for _, r := range table {
		out = append(out, prefixSamples(r.Prefix)...)
	}
	for _, s := range []string{
		"1.1.1.1", "8.8.8.8", "20.0.0.1", "100.63.255.255", "100.128.0.0", "172.32.0.1", "192.88.98.255",
		"198.20.0.1", "223.255.255.254", "2606:4700::1111", "2a00:1450:4001::1", "2001:1::1", "2001:4860::8888",
		"::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::ffff:8.8.8.8",
		"1::1", "4000::1", "5f00::1", "fe00::1",
	} {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// prefixSamples returns p's first, middle and last address.
func prefixSamples(p netip.Prefix) []netip.Addr {
	first := p.Masked().Addr()
	b := first.AsSlice()
	host := first.BitLen() - p.Bits()
	if host == 0 {
		return []netip.Addr{first}
	}
	mid := append([]byte(nil), b...)
	bit := p.Bits() // the first host bit
	mid[bit/8] |= 0x80 >> (bit % 8)
	last := append([]byte(nil), b...)
	for i := p.Bits(); i < first.BitLen(); i++ {
		last[i/8] |= 0x80 >> (i % 8)
	}
	m, _ := netip.AddrFromSlice(mid)
	l, _ := netip.AddrFromSlice(last)
	return []netip.Addr{first, m, l}
}
