package netclass

import (
	"net/netip"
	"testing"
)

// FuzzClassify: any 4 or 16 bytes classify without panicking, an
// IPv4-mapped address classifies as its IPv4 address, a zone changes
// nothing, and Allowed with no ranges allows exactly Public.
func FuzzClassify(f *testing.F) {
	for _, a := range Samples() {
		f.Add(a.AsSlice())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		c := Classify(a)
		if a.Is4() {
			if m := Classify(netip.AddrFrom16(a.As16())); m != c {
				t.Errorf("Classify(%s) = %s but its mapped form is %s", a, c, m)
			}
		} else if z := Classify(a.WithZone("eth0")); z != c {
			t.Errorf("Classify(%s) = %s but with a zone %s", a, c, z)
		}
		if _, ok := Allowed(a, nil); ok != (c == Public) {
			t.Errorf("Allowed(%s, nil) = %v, class %s", a, ok, c)
		}
	})
}

// FuzzParseRange: no panic; an accepted range is masked, unmapped and
// reads back to itself.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "10.1.2.3", "::ffff:10.0.0.0/104", "fd00::/8", "fe80::1%eth0", "10.0.0.1/8", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseRange(s)
		if err != nil {
			return
		}
		if p.Masked() != p || p.Addr().Is4In6() {
			t.Errorf("ParseRange(%q) = %s: not masked or still mapped", s, p)
		}
		if q, err := ParseRange(p.String()); err != nil || q != p {
			t.Errorf("ParseRange(%q) = %s, which reads back as %s, %v", s, p, q, err)
		}
	})
}
