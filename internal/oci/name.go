package oci

import (
	"errors"
	"fmt"
	"strings"
)

// MaxNameLength bounds a repository name. The distribution spec suggests
// clients keep host plus name under 255 characters; airlock enforces it on
// the name alone.
const MaxNameLength = 255

// MaxTagLength is the longest tag the spec grammar allows.
const MaxTagLength = 128

// Errors returned by the name and reference parsers.
var (
	ErrNameInvalid      = errors.New("invalid repository name")
	ErrReferenceInvalid = errors.New("invalid reference")
)

// ParseName validates a repository name against the distribution-spec
// grammar:
//
//	[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
//
// A valid name has no empty, "." or ".." components, never starts with '_'
// or '.', and so is safe to map onto directories.
func ParseName(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrNameInvalid)
	}
	if len(s) > MaxNameLength {
		return "", fmt.Errorf("%w: longer than %d characters", ErrNameInvalid, MaxNameLength)
	}
	for _, comp := range strings.Split(s, "/") {
		if !validNameComponent(comp) {
			return "", fmt.Errorf("%w: component %q must be lowercase letters and digits separated by '.', '_', '__' or '-'", ErrNameInvalid, truncate(comp, 64))
		}
	}
	return s, nil
}

// validNameComponent checks [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*.
func validNameComponent(c string) bool {
	if c == "" {
		return false
	}
	i := 0
	for {
		// alphanumeric run
		start := i
		for i < len(c) && isLowerAlnum(c[i]) {
			i++
		}
		if i == start {
			return false
		}
		if i == len(c) {
			return true
		}
		// separator
		switch c[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
		if i == len(c) {
			return false
		}
	}
}

func isLowerAlnum(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }

// ValidTag reports whether s matches [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func ValidTag(s string) bool {
	if len(s) == 0 || len(s) > MaxTagLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
		if i > 0 {
			ok = ok || c == '.' || c == '-'
		}
		if !ok {
			return false
		}
	}
	return true
}

// Reference is a manifest reference: a tag or a digest, never both.
type Reference struct {
	Tag    string
	Digest Digest
}

// IsDigest reports whether the reference names content by digest.
func (r Reference) IsDigest() bool { return r.Digest != "" }

func (r Reference) String() string {
	if r.IsDigest() {
		return string(r.Digest)
	}
	return r.Tag
}

// ParseReference parses the <reference> path element of a manifest URL. A
// string containing ':' must be a digest; anything else must be a tag.
func ParseReference(s string) (Reference, error) {
	if strings.Contains(s, ":") {
		d, err := ParseDigest(s)
		if err != nil {
			return Reference{}, err
		}
		return Reference{Digest: d}, nil
	}
	if !ValidTag(s) {
		return Reference{}, fmt.Errorf("%w: tag %q must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", ErrReferenceInvalid, truncate(s, 64))
	}
	return Reference{Tag: s}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
