package dnsserver

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/airlockdev/airlock/internal/netclass"
	"github.com/airlockdev/airlock/internal/testkit/dnstest"
)

// rebindingEnv serves one allowed name per address (aN.allowed.test, A or
// AAAA by family) with IPv6 allowed, so only the rebinding filter decides.
func rebindingEnv(t *testing.T, addrs []netip.Addr) (*env, func(i int) (string, uint16)) {
	t.Helper()
	zone := map[string][]string{}
	name := func(i int) (string, uint16) {
		n := fmt.Sprintf("a%d.allowed.test", i)
		if addrs[i].Is4() {
			return n, dns.TypeA
		}
		return n, dns.TypeAAAA
	}
	for i, a := range addrs {
		n, qt := name(i)
		zone[n+"./"+dns.Type(qt).String()] = []string{fmt.Sprintf("%s. 300 IN %s %s", n, dns.Type(qt), a)}
	}
	up := dnstest.NewZone(t, zone)
	return start(t, defaults(up.Addr), Deps{AllowIPv6: true}), name
}

// An allowed public name answered with an address in any non-public range
// is refused as rebinding, including the ranges the gateway's dialer
// refused and this filter once let through (site-local, IPv4-compatible,
// the 6to4 relay, IPv6 outside 2000::/3, IPv6 documentation).
func TestRebindingRefusesEveryInternalRange(t *testing.T) {
	tests := []struct {
		addr    string
		refused bool
	}{
		{"1.2.3.4", false},
		{"2606:4700::1111", false},
		{"127.0.0.1", true},
		{"169.254.169.254", true},
		{"10.1.2.3", true},
		{"100.64.0.1", true},
		{"240.0.0.1", true},
		{"192.88.99.1", true},     // 6to4 relay anycast
		{"fec0::1", true},         // site-local
		{"::10.0.0.1", true},      // IPv4-compatible
		{"::ffff:10.0.0.1", true}, // IPv4-mapped
		{"64:ff9b::a00:1", true},  // NAT64 of 10.0.0.1
		{"2002:a00:1::1", true},   // 6to4 of 10.0.0.1
		{"4000::1", true},         // outside 2000::/3
		{"fe00::1", true},         // outside 2000::/3
		{"3fff::1", true},         // documentation (RFC 9637)
		{"2001:2::1", true},       // benchmarking (RFC 5180)
		{"fe80::1", true},         // link-local
		{"fd00:ec2::254", true},   // ULA (the EC2 IPv6 metadata address)
	}
	var addrs []netip.Addr
	for _, tt := range tests {
		addrs = append(addrs, netip.MustParseAddr(tt.addr))
	}
	e, name := rebindingEnv(t, addrs)
	for i, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			n, qt := name(i)
			r := e.ask(t, n, qt, false, 1232)
			refused := r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0
			if refused != tt.refused {
				t.Errorf("%s answered %s: refused = %v (rcode %s, answer %v), want %v", n, tt.addr, refused, dns.RcodeToString[r.Rcode], r.Answer, tt.refused)
			}
		})
	}
}

// The rebinding filter decides as netclass.Allowed does, for a sample of
// every range in the one classification (and public addresses), with
// gateway.allowedInternalRanges opening some: the egress dialer and the
// upstream client have the same test against the same samples, which pins
// the three to one table.
func TestRebindingAgreesWithNetclass(t *testing.T) {
	allowed := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00:1::/32")}
	samples := append(netclass.Samples(), netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("fd00:1::1"))
	zone := map[string][]string{}
	for i, a := range samples {
		qt := dns.TypeAAAA
		if a.Is4() {
			qt = dns.TypeA
		}
		n := fmt.Sprintf("a%d.allowed.test", i)
		zone[n+"./"+dns.Type(qt).String()] = []string{fmt.Sprintf("%s. 300 IN %s %s", n, dns.Type(qt), a)}
	}
	up := dnstest.NewZone(t, zone)
	e := start(t, defaults(up.Addr), Deps{AllowIPv6: true, AllowedInternalRanges: allowed})
	for i, a := range samples {
		qt := dns.TypeAAAA
		if a.Is4() {
			qt = dns.TypeA
		}
		r := e.ask(t, fmt.Sprintf("a%d.allowed.test", i), qt, false, 1232)
		refused := r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0
		class, ok := netclass.Allowed(a, allowed)
		if refused == ok {
			t.Errorf("answer %s (%s): refused = %v, want %v (netclass.Allowed)", a, class, refused, !ok)
		}
	}
}
