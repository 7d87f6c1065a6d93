package dnsname

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidPattern is wrapped by every error ParsePattern returns.
var ErrInvalidPattern = errors.New("invalid name pattern")

type patternKind uint8

const (
	kindNone   patternKind = iota // zero Pattern: matches nothing
	kindExact                     // "name"
	kindSuffix                    // "*.suffix"
	kindAny                       // "*"
)

// Pattern is a target name as policy rules write it:
//
//	"api.example.com"  matches api.example.com only
//	"*.example.com"    matches a.example.com, a.b.example.com, … but NOT example.com
//	"*"                matches every name
//
// This is Azure Firewall's target-FQDN semantics: a leading "*." stands for
// one or more labels, and the apex must be listed on its own (Azure Firewall
// FAQ, "How do wildcards work in target URLs and target FQDNs in application
// rules?"). Azure also accepts "*contoso.com", which matches
// "th3re4lcontoso.com" too; airlock rejects it, and every other use of '*'.
// The zero Pattern matches nothing.
type Pattern struct {
	kind patternKind
	name Name // the exact name, or the suffix after "*."
}

// ParsePattern parses "*", "*.suffix" or an exact name. The suffix and the
// exact name follow Parse (so they are normalized: lowercase, no trailing
// dot). Forms such as "a.*.b", "*foo.com", "**", "*." and "foo.*" are
// errors.
func ParsePattern(s string) (Pattern, error) {
	switch {
	case s == "*":
		return Pattern{kind: kindAny}, nil
	case strings.HasPrefix(s, "*."):
		rest := s[2:]
		if strings.Contains(rest, "*") {
			return Pattern{}, fmt.Errorf("%w %q: '*' is allowed only as the whole first label (\"*.example.com\") or alone (\"*\")", ErrInvalidPattern, quote(s))
		}
		n, err := Parse(rest)
		if err != nil {
			return Pattern{}, fmt.Errorf("%w %q: suffix: %w", ErrInvalidPattern, quote(s), err)
		}
		return Pattern{kind: kindSuffix, name: n}, nil
	case strings.Contains(s, "*"):
		return Pattern{}, fmt.Errorf("%w %q: '*' is allowed only as the whole first label (\"*.example.com\") or alone (\"*\")", ErrInvalidPattern, quote(s))
	}
	n, err := Parse(s)
	if err != nil {
		return Pattern{}, fmt.Errorf("%w %q: %w", ErrInvalidPattern, quote(s), err)
	}
	return Pattern{kind: kindExact, name: n}, nil
}

// ExactPattern returns the pattern that matches n only.
func ExactPattern(n Name) Pattern {
	if n.IsZero() {
		return Pattern{}
	}
	return Pattern{kind: kindExact, name: n}
}

// Match reports whether n matches p. The zero Name matches no pattern, not
// even "*".
func (p Pattern) Match(n Name) bool {
	if n.IsZero() {
		return false
	}
	switch p.kind {
	case kindExact:
		return n.s == p.name.s
	case kindSuffix:
		// n must be "<one or more labels>.<suffix>".
		return len(n.s) > len(p.name.s)+1 &&
			strings.HasSuffix(n.s, p.name.s) &&
			n.s[len(n.s)-len(p.name.s)-1] == '.'
	case kindAny:
		return true
	}
	return false
}

// String returns the pattern in the form ParsePattern accepts.
func (p Pattern) String() string {
	switch p.kind {
	case kindExact:
		return p.name.s
	case kindSuffix:
		return "*." + p.name.s
	case kindAny:
		return "*"
	}
	return ""
}

// IsZero reports whether p is the zero Pattern.
func (p Pattern) IsZero() bool { return p.kind == kindNone }

// IsWildcard reports whether p is "*" or "*.suffix".
func (p Pattern) IsWildcard() bool { return p.kind == kindSuffix || p.kind == kindAny }

// Exact returns the name p matches and true when p is an exact name.
func (p Pattern) Exact() (Name, bool) {
	if p.kind != kindExact {
		return Name{}, false
	}
	return p.name, true
}

// MarshalText returns String().
func (p Pattern) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses text with ParsePattern.
func (p *Pattern) UnmarshalText(text []byte) error {
	v, err := ParsePattern(string(text))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
