package main

import (
	"net/netip"
	"testing"

	"github.com/airlockdev/airlock/internal/egress"
	"github.com/airlockdev/airlock/internal/netclass"
)

// gateway.allowedInternalRanges is parsed once, when the config is
// decoded; serve hands the same typed ranges to the gateway's dialer and
// (as Prefixes) to the DNS rebinding filter: both must open the same
// addresses, single addresses and IPv4-mapped forms included.
func TestAllowedRangesOpenWhatTheDialerOpens(t *testing.T) {
	ranges := netclass.MustParseRanges("10.1.2.3", "10.20.0.0/16", "::ffff:172.16.0.0/108", "fd00:1::/32")
	d, err := egress.NewDialer(&egress.Config{AllowIPv6: true, AllowedInternalRanges: ranges}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dns := ranges.Prefixes()
	for _, s := range []string{"10.1.2.3", "10.1.2.4", "10.20.5.6", "172.16.0.1", "::ffff:172.16.0.1", "fd00:1::1", "169.254.169.254"} {
		a := netip.MustParseAddr(s)
		reason, _ := d.Check(a, true)
		_, dnsOK := netclass.Allowed(a, dns)
		if dialOK := reason == ""; dialOK != dnsOK {
			t.Errorf("%s: dialer allows %v, DNS filter ranges %v allow %v", s, dialOK, dns, dnsOK)
		}
	}
}
