package netclass

import (
	"errors"
	"fmt"
	"net/netip"
)

// AllowedRange is one entry of an allowed-ranges list, parsed once, when the
// config is decoded (UnmarshalText runs ParseRange); its text form is
// the YAML form: "10.0.0.0/8" or "10.1.2.3". A single address is its
// one-address prefix (10.1.2.3/32).
type AllowedRange struct{ netip.Prefix }

// UnmarshalText parses b as ParseRange does; the error says why without
// repeating b (the config decoder quotes the value).
func (r *AllowedRange) UnmarshalText(b []byte) error {
	p, why := parseRange(string(b))
	if why != "" {
		return errors.New(why)
	}
	r.Prefix = p
	return nil
}

// Equal reports whether r and o are the same prefix.
func (r AllowedRange) Equal(o AllowedRange) bool { return r.Prefix == o.Prefix }

// AllowedRanges is an allowed-ranges list as the config writes it
// (gateway.allowedInternalRanges, registry.upstreamAllowedInternalRanges).
// The zero value opens nothing.
type AllowedRanges []AllowedRange

// Prefixes returns the ranges as prefixes, for Allowed and Contains.
func (rs AllowedRanges) Prefixes() []netip.Prefix {
	if len(rs) == 0 {
		return nil
	}
	out := make([]netip.Prefix, len(rs))
	for i, r := range rs {
		out[i] = r.Prefix
	}
	return out
}

// ParseRanges parses every entry of ss with ParseRange; the error names
// every bad entry with its index.
func ParseRanges(ss ...string) (AllowedRanges, error) {
	out := make(AllowedRanges, 0, len(ss))
	var errs []error
	for i, s := range ss {
		p, err := ParseRange(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("[%d]: %w", i, err))
			continue
		}
		out = append(out, AllowedRange{p})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// MustParseRanges is ParseRanges for literals in tests; it panics on a
// bad entry.
func MustParseRanges(ss ...string) AllowedRanges {
	rs, err := ParseRanges(ss...)
	if err != nil {
		panic(err)
	}
	return rs
}
