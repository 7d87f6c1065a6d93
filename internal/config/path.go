package config

import (
	"strconv"
	"strings"
)

// Field paths name a setting the way a user finds it in the file:
//
//	registry.listen                        a key of a mapping decoded into a struct
//	registry.users[0].name                 an element of a list
//	registry.upstreams["mcr.microsoft.com"] an entry of a map (key quoted with strconv.Quote)
//
// Domain packages build the same strings in their Validate methods, relative
// to their section.

// fieldPath is the path of the struct field key under parent.
func fieldPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// indexPath is the path of element i of the list at parent.
func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// keyPath is the path of the map entry key under parent.
func keyPath(parent, key string) string {
	return parent + "[" + strconv.Quote(key) + "]"
}

// joinPath puts a path reported by a section's Validate under the section's
// prefix. rel may be empty (the section itself) or start with an index.
func joinPath(prefix, rel string) string {
	switch {
	case rel == "":
		return prefix
	case prefix == "":
		return rel
	case rel[0] == '[':
		return prefix + rel
	default:
		return prefix + "." + rel
	}
}

// parentPath strips the last element of p: "a.b[0].c" → "a.b[0]" → "a.b" →
// "a" → "". Quoted map keys may contain dots and brackets. A malformed path
// has the document as its parent.
func parentPath(p string) string {
	last := 0
	for i := 0; i < len(p); {
		switch p[i] {
		case '.':
			last = i
			i++
		case '[':
			last = i
			if i+1 < len(p) && p[i+1] == '"' {
				q, err := strconv.QuotedPrefix(p[i+1:])
				if err != nil {
					return ""
				}
				i += 1 + len(q)
				if i >= len(p) || p[i] != ']' {
					return ""
				}
				i++
				continue
			}
			end := strings.IndexByte(p[i:], ']')
			if end < 0 {
				return ""
			}
			i += end + 1
		default:
			i++
		}
	}
	return p[:last]
}

// related reports whether a and b are the same path or one lies inside the
// other.
func related(a, b string) bool {
	return a == b || within(a, b) || within(b, a)
}

// within reports whether p lies strictly inside parent.
func within(p, parent string) bool {
	if parent == "" {
		return p != ""
	}
	if !strings.HasPrefix(p, parent) || len(p) == len(parent) {
		return false
	}
	c := p[len(parent)]
	return c == '.' || c == '['
}
