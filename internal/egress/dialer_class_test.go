package egress

import (
	"net/netip"
	"testing"

	"github.com/airlockdev/airlock/internal/netclass"
	"github.com/airlockdev/airlock/internal/policy"
)

// The dialer's check for an address from a name decides as
// netclass.Allowed does, for a sample of every range of the one
// classification, with allowedInternalRanges opening some: the DNS
// rebinding filter and the upstream client have the same test against the
// same samples, which pins the three to one table.
func TestDialerCheckAgreesWithNetclass(t *testing.T) {
	allowed := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00:1::/32")}
	d, err := NewDialer(&Config{AllowIPv6: true, AllowedInternalRanges: netclass.MustParseRanges("10.1.0.0/16", "fd00:1::/32")}, fakeResolver{})
	if err != nil {
		t.Fatal(err)
	}
	samples := append(netclass.Samples(), netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("fd00:1::1"))
	for _, a := range samples {
		reason, class := d.Check(a, true)
		wantClass, ok := netclass.Allowed(a, allowed)
		want := policy.Reason("")
		if !ok {
			want = policy.ReasonInternalAddress
		}
		if reason != want || class != wantClass {
			t.Errorf("Check(%s, true) = %q, %s, want %q, %s (netclass.Allowed)", a, reason, class, want, wantClass)
		}
	}
}
