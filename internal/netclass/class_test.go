package netclass

import (
	"net/netip"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		addr string
		want Class
	}{
		{"8.8.8.8", Public},
		{"2606:4700::1111", Public},
		{"2606:4700::1111%eth0", Public},
		{"127.0.0.1", Loopback},
		{"::1", Loopback},
		{"::ffff:127.0.0.1", Loopback},
		{"169.254.169.254", LinkLocal},
		{"::ffff:169.254.169.254", LinkLocal},
		{"fe80::1", LinkLocal},
		{"fe80::1%eth0", LinkLocal},
		{"10.1.2.3", Private},
		{"172.31.255.255", Private},
		{"192.168.1.1", Private},
		{"fd00::1", Private},
		{"fec0::1", Private},
		{"100.64.0.1", CGNAT},
		{"224.0.0.1", Multicast},
		{"239.255.255.250", Multicast},
		{"ff02::1", Multicast},
		{"255.255.255.255", Multicast},
		{"0.0.0.0", Unspecified},
		{"::", Unspecified},
		{"198.18.0.1", Special},
		{"192.88.99.1", Special},
		{"64:ff9b::a00:1", Special},
		{"2002:a00:1::", Special},
		{"2001::1", Special},
		{"2001:2::1", Special},
		{"2001:db8::1", Special},
		{"3fff::1", Special},
		{"::10.0.0.1", Special},
		{"240.0.0.1", Special},
		{"4000::1", Special},
		{"1::1", Special},
		{"fe00::1", Special},
	}
	for _, tc := range tests {
		if got := Classify(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Classify(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
	if got := Classify(netip.Addr{}); got != Unspecified {
		t.Errorf("Classify(invalid) = %s, want %s", got, Unspecified)
	}
}

// Nothing inside a row is Public, and every row's first address has the
// row's class: no row is shadowed by one before it (except ::/96, whose
// first addresses are :: and ::1).
func TestEveryRangeIsNonPublic(t *testing.T) {
	for _, r := range Ranges() {
		for _, a := range prefixSamples(r.Prefix) {
			if c := Classify(a); c == Public {
				t.Errorf("Classify(%s) = public, but %s (%s) lists it as %s", a, r.Prefix, r.Note, r.Class)
			}
		}
		if c := Classify(r.Prefix.Addr()); c != r.Class && r.Prefix != netip.MustParsePrefix("::/96") {
			t.Errorf("Classify(%s) = %s, want %s (%s): the row is shadowed", r.Prefix.Addr(), c, r.Class, r.Note)
		}
	}
}

func TestAllowed(t *testing.T) {
	allowed := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		addr string
		ok   bool
	}{
		{"8.8.8.8", true},
		{"10.1.2.3", true},
		{"::ffff:10.1.2.3", true},
		{"10.2.0.1", false},
		{"fd00::1", true},
		{"fd00::1%eth0", true},
		{"fe80::1", false},
		{"169.254.169.254", false},
	}
	for _, tt := range tests {
		if _, ok := Allowed(netip.MustParseAddr(tt.addr), allowed); ok != tt.ok {
			t.Errorf("Allowed(%s, %v) = %v, want %v", tt.addr, allowed, ok, tt.ok)
		}
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "10.1.2.3", want: "10.1.2.3/32"},
		{in: "fd00::/8", want: "fd00::/8"},
		{in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{in: "::ffff:10.1.2.3", want: "10.1.2.3/32"},
		{in: "10.0.0.1/8", err: true},
		{in: "fe80::1%eth0", err: true},
		{in: "example.com", err: true},
		{in: "", err: true},
	}
	for _, tt := range tests {
		p, err := ParseRange(tt.in)
		if (err != nil) != tt.err || err == nil && p.String() != tt.want {
			t.Errorf("ParseRange(%q) = %v, %v, want %s (error %v)", tt.in, p, err, tt.want, tt.err)
		}
	}
}
