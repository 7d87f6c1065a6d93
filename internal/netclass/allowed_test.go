package netclass

import (
	"net/netip"
	"strings"
	"testing"
)

func TestAllowedRangeUnmarshalText(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "10.1.2.3", want: "10.1.2.3/32"},
		{in: "::ffff:172.16.0.0/108", want: "172.16.0.0/12"},
		{in: "fd00::1", want: "fd00::1/128"},
		{in: "10.0.0.1/8", err: "has host bits set; did you mean 10.0.0.0/8?"},
		{in: "x", err: "want a CIDR such as 10.0.0.0/8 or an IP address"},
		{in: "fe80::1%eth0", err: "an address with a zone is not accepted"},
	}
	for _, tt := range tests {
		var r AllowedRange
		err := r.UnmarshalText([]byte(tt.in))
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("UnmarshalText(%q) = %v, want error %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || r.String() != tt.want {
			t.Errorf("UnmarshalText(%q) = %s, %v, want %s", tt.in, r, err, tt.want)
		}
		if p, err := ParseRange(tt.in); err != nil || p != r.Prefix {
			t.Errorf("ParseRange(%q) = %s, %v; UnmarshalText gave %s", tt.in, p, err, r)
		}
	}
}

func TestParseRanges(t *testing.T) {
	rs, err := ParseRanges("10.0.0.0/8", "10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.2.3/32")}
	if got := rs.Prefixes(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Prefixes() = %v, want %v", got, want)
	}
	_, err = ParseRanges("10.0.0.1/8", "10.0.0.0/8", "x")
	if err == nil || !strings.Contains(err.Error(), "[0]: ") || !strings.Contains(err.Error(), "[2]: ") || strings.Contains(err.Error(), "[1]") {
		t.Errorf("ParseRanges(bad [0], good [1], bad [2]) error = %v, want [0] and [2] named", err)
	}
	if got := AllowedRanges(nil).Prefixes(); got != nil {
		t.Errorf("AllowedRanges(nil).Prefixes() = %v, want nil", got)
	}
}
