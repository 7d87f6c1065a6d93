package dnsname

import (
	"errors"
	"fmt"
	"strings"
)

// Limits from RFC 1035 §2.3.4, counted on the presentation form without the
// trailing dot.
const (
	MaxLabelLength = 63
	MaxNameLength  = 253
)

// maxInput bounds how much of an invalid input is examined or quoted.
const maxInput = 1024

// ErrInvalidName is wrapped by every error Parse returns.
var ErrInvalidName = errors.New("invalid name")

// Name is a normalized fully qualified domain name: lowercase ASCII, no
// trailing dot, labels of 1..63 letters, digits, '-' and '_' (no label starts
// or ends with '-'), at most 253 characters. The zero Name is empty and is
// what "no name" means (a ClientHello without SNI, for example).
type Name struct {
	s string
}

// Parse validates s and returns its normalized form. ASCII letters are
// lowercased and one trailing dot is removed. It rejects:
//   - empty input, the root ".", and empty labels ("a..b", ".a");
//   - labels longer than 63 characters and names longer than 253;
//   - characters other than letters, digits, '-' and '_' — so spaces, '*',
//     ':' (ports, IPv6), '/' and '@' never reach a Name;
//   - non-ASCII bytes: internationalized names must arrive as punycode
//     A-labels ("xn--…"), which are ordinary LDH labels;
//   - a label that starts or ends with '-';
//   - names an IPv4 parser would accept: the last label all digits
//     ("10.0.0.1", "127.1", "2130706433") or of the form 0x<hex> — RFC 3696
//     §2 says a top-level label is never all-numeric, and inet_aton reads
//     those forms as addresses.
//
// '_' is accepted anywhere in a label because service names (SRV, DKIM,
// "_acme-challenge") use it, although RFC 1123 host names do not.
func Parse(s string) (Name, error) {
	if s == "" {
		return Name{}, fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(s) > maxInput {
		return Name{}, fmt.Errorf("%w %q: longer than %d characters", ErrInvalidName, quote(s), MaxNameLength)
	}
	t := strings.TrimSuffix(s, ".")
	if t == "" {
		return Name{}, fmt.Errorf("%w %q: the root is not a host name", ErrInvalidName, quote(s))
	}
	if len(t) > MaxNameLength {
		return Name{}, fmt.Errorf("%w %q: %d characters, longer than %d", ErrInvalidName, quote(s), len(t), MaxNameLength)
	}
	if why := checkName(t); why != "" {
		return Name{}, fmt.Errorf("%w %q: %s", ErrInvalidName, quote(s), why)
	}
	if looksLikeIPv4(t) {
		return Name{}, fmt.Errorf("%w %q: an IPv4 address, not a name", ErrInvalidName, quote(s))
	}
	return Name{s: lower(t)}, nil
}

// checkName returns why t (no trailing dot, length already checked) is not a
// valid name, or "".
func checkName(t string) string {
	start := 0
	for i := 0; i <= len(t); i++ {
		if i < len(t) && t[i] != '.' {
			c := t[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			case c >= 0x80:
				return "non-ASCII character; internationalized names must be punycode (xn--)"
			default:
				return fmt.Sprintf("character %q not allowed (letters, digits, '-', '_' only)", rune(c))
			}
			continue
		}
		label := t[start:i]
		switch {
		case label == "":
			return fmt.Sprintf("empty label at offset %d", start)
		case len(label) > MaxLabelLength:
			return fmt.Sprintf("label %q is %d characters, longer than %d", label[:16]+"…", len(label), MaxLabelLength)
		case label[0] == '-':
			return fmt.Sprintf("label %q starts with '-'", label)
		case label[len(label)-1] == '-':
			return fmt.Sprintf("label %q ends with '-'", label)
		}
		start = i + 1
	}
	return ""
}

// looksLikeIPv4 reports whether the last label of t is all digits or a
// 0x-prefixed hex number, the forms inet_aton(3) accepts as address parts.
func looksLikeIPv4(t string) bool {
	last := t[strings.LastIndexByte(t, '.')+1:]
	if allDigits(last) {
		return true
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return len(last) == 2 || allHex(last[2:])
	}
	return false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// lower lowercases ASCII letters without allocating when there are none.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// quote shortens s for an error message.
func quote(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// String returns the normalized name ("" for the zero Name).
func (n Name) String() string { return n.s }

// IsZero reports whether n is the empty Name.
func (n Name) IsZero() bool { return n.s == "" }

// MarshalText returns the normalized name, so a Name logs and encodes as a
// plain string.
func (n Name) MarshalText() ([]byte, error) { return []byte(n.s), nil }

// UnmarshalText parses text with Parse.
func (n *Name) UnmarshalText(text []byte) error {
	v, err := Parse(string(text))
	if err != nil {
		return err
	}
	*n = v
	return nil
}

// ParseHost is Parse for host names (RFC 1123): the same rules, except
// that '_' is not accepted and neither is a trailing dot. Registry hosts,
// URL hosts and listen addresses are host names, never service names.
func ParseHost(s string) (Name, error) {
	if strings.HasSuffix(s, ".") {
		return Name{}, fmt.Errorf("%w %q: a host name has no trailing dot", ErrInvalidName, quote(s))
	}
	if i := strings.IndexByte(s, '_'); i >= 0 && len(s) <= maxInput {
		return Name{}, fmt.Errorf("%w %q: character '_' not allowed in a host name", ErrInvalidName, quote(s))
	}
	return Parse(s)
}
