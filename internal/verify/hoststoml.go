package verify

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// hostsFile is what verify needs of a containerd hosts.toml: the upstream
// server and the [host."…"] entries, in file order.
type hostsFile struct {
	// Server is the top-level server with its own settings (URL =
	// server); containerd tries it after the host entries.
	Server hostEntry
	Hosts  []hostEntry
}

// hostEntry is one [host."URL"] table.
type hostEntry struct {
	URL          string
	Capabilities []string // nil: containerd's default (pull, resolve, push)
	CA           []string
	SkipVerify   bool
	OverridePath bool
	Header       map[string][]string
}

// has reports whether the entry has capability c.
func (h hostEntry) has(c string) bool {
	if h.Capabilities == nil {
		return true
	}
	for _, x := range h.Capabilities {
		if x == c {
			return true
		}
	}
	return false
}

// parseHostsTOML reads the subset of TOML containerd's hosts.toml uses:
// top-level keys, [host."URL"] and [host."URL".header] tables, and
// values that are strings, booleans, numbers or arrays of strings
// (arrays may span lines). Unknown keys are ignored, as containerd does.
func parseHostsTOML(b []byte) (hostsFile, error) {
	var f hostsFile
	cur := -1         // index in f.Hosts, -1 = top level
	inHeader := false // in [host."…".header]
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(stripComment(sc.Text()))
		if text == "" {
			continue
		}
		if strings.HasPrefix(text, "[") {
			if strings.HasPrefix(text, "[[") {
				return f, fmt.Errorf("line %d: arrays of tables are not part of hosts.toml", line)
			}
			if !strings.HasSuffix(text, "]") {
				return f, fmt.Errorf("line %d: unterminated table header", line)
			}
			keys, err := splitKeys(strings.TrimSpace(text[1 : len(text)-1]))
			if err != nil {
				return f, fmt.Errorf("line %d: %w", line, err)
			}
			switch {
			case len(keys) == 2 && keys[0] == "host":
				f.Hosts = append(f.Hosts, hostEntry{URL: keys[1]})
				cur, inHeader = len(f.Hosts)-1, false
			case len(keys) == 3 && keys[0] == "host" && keys[2] == "header":
				cur, inHeader = findHost(&f, keys[1]), true
			case len(keys) == 1 && keys[0] == "header":
				cur, inHeader = -1, true
			default:
				cur, inHeader = -2, false // a table verify does not read
			}
			continue
		}
		key, rest, ok := strings.Cut(text, "=")
		if !ok {
			return f, fmt.Errorf("line %d: want key = value, got %q", line, text)
		}
		// An array may continue over the following lines.
		for strings.HasPrefix(strings.TrimSpace(rest), "[") && !arrayClosed(rest) && sc.Scan() {
			line++
			rest += " " + stripComment(sc.Text())
		}
		ks, err := splitKeys(strings.TrimSpace(key))
		if err != nil || len(ks) != 1 {
			return f, fmt.Errorf("line %d: bad key %q", line, strings.TrimSpace(key))
		}
		v, err := parseValue(strings.TrimSpace(rest))
		if err != nil {
			return f, fmt.Errorf("line %d: %s: %w", line, ks[0], err)
		}
		if err := assign(&f, cur, inHeader, ks[0], v); err != nil {
			return f, fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return f, fmt.Errorf("reading hosts.toml: %w", err)
	}
	return f, nil
}

func findHost(f *hostsFile, url string) int {
	for i, h := range f.Hosts {
		if h.URL == url {
			return i
		}
	}
	f.Hosts = append(f.Hosts, hostEntry{URL: url})
	return len(f.Hosts) - 1
}

// value is a decoded TOML value: a string, a bool, a list of strings, or
// another scalar kept as text.
type value struct {
	str   string
	list  []string
	isArr bool
	b     bool
	isB   bool
}

func (v value) strings() []string {
	if v.isArr {
		return v.list
	}
	return []string{v.str}
}

func assign(f *hostsFile, cur int, inHeader bool, key string, v value) error {
	if cur == -2 {
		return nil
	}
	if inHeader {
		if cur >= 0 {
			h := &f.Hosts[cur]
			if h.Header == nil {
				h.Header = map[string][]string{}
			}
			h.Header[key] = v.strings()
		}
		return nil
	}
	h := &f.Server
	if cur >= 0 {
		h = &f.Hosts[cur]
	}
	switch key {
	case "server":
		if cur == -1 {
			f.Server.URL = v.str
		}
	case "capabilities":
		if !v.isArr {
			return fmt.Errorf("capabilities must be an array of strings")
		}
		h.Capabilities = append([]string{}, v.list...)
	case "ca":
		h.CA = v.strings()
	case "skip_verify":
		h.SkipVerify = v.b
	case "override_path":
		if !v.isB {
			return fmt.Errorf("override_path must be true or false")
		}
		h.OverridePath = v.b
	}
	return nil
}

// parseValue decodes a string, boolean, array of strings or other scalar.
func parseValue(s string) (value, error) {
	switch {
	case s == "true" || s == "false":
		return value{b: s == "true", isB: true}, nil
	case strings.HasPrefix(s, `"`) || strings.HasPrefix(s, "'"):
		str, rest, err := parseString(s)
		if err != nil {
			return value{}, err
		}
		if strings.TrimSpace(rest) != "" {
			return value{}, fmt.Errorf("text after the string: %q", rest)
		}
		return value{str: str}, nil
	case strings.HasPrefix(s, "["):
		return parseArray(s)
	case s == "":
		return value{}, fmt.Errorf("missing value")
	}
	return value{str: s}, nil // a number or a date: kept as text
}

func parseArray(s string) (value, error) {
	v := value{isArr: true, list: []string{}}
	rest := strings.TrimSpace(s[1:])
	for {
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "]") {
			if strings.TrimSpace(rest[1:]) != "" {
				return value{}, fmt.Errorf("text after the array: %q", rest[1:])
			}
			return v, nil
		}
		if rest == "" {
			return value{}, fmt.Errorf("unterminated array")
		}
		str, after, err := parseString(rest)
		if err != nil {
			return value{}, fmt.Errorf("array element: %w", err)
		}
		v.list = append(v.list, str)
		after = strings.TrimSpace(after)
		if strings.HasPrefix(after, ",") {
			after = after[1:]
		} else if !strings.HasPrefix(after, "]") {
			return value{}, fmt.Errorf("want , or ] after an element, got %q", after)
		}
		rest = after
	}
}

// parseString decodes a basic ("…", with escapes) or literal ('…') string
// at the start of s and returns the rest.
func parseString(s string) (string, string, error) {
	if strings.HasPrefix(s, "'") {
		end := strings.IndexByte(s[1:], '\'')
		if end < 0 {
			return "", "", fmt.Errorf("unterminated string")
		}
		return s[1 : 1+end], s[2+end:], nil
	}
	if !strings.HasPrefix(s, `"`) {
		return "", "", fmt.Errorf("want a quoted string, got %q", s)
	}
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			str, err := strconv.Unquote(s[:i+1])
			if err != nil {
				return "", "", fmt.Errorf("bad string %s: %w", s[:i+1], err)
			}
			return str, s[i+1:], nil
		}
	}
	return "", "", fmt.Errorf("unterminated string")
}

// splitKeys splits a dotted key whose parts may be quoted.
func splitKeys(s string) ([]string, error) {
	var keys []string
	for {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, fmt.Errorf("empty key")
		}
		var k string
		if s[0] == '"' || s[0] == '\'' {
			str, rest, err := parseString(s)
			if err != nil {
				return nil, err
			}
			k, s = str, rest
		} else {
			end := strings.IndexAny(s, ". \t")
			if end < 0 {
				end = len(s)
			}
			k, s = s[:end], s[end:]
			if k == "" {
				return nil, fmt.Errorf("empty key part")
			}
		}
		keys = append(keys, k)
		s = strings.TrimSpace(s)
		if s == "" {
			return keys, nil
		}
		if s[0] != '.' {
			return nil, fmt.Errorf("want . between key parts, got %q", s)
		}
		s = s[1:]
	}
}

// stripComment removes a # comment that is not inside a string.
func stripComment(s string) string {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '"' && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote == 0 && c == '#':
			return s[:i]
		}
	}
	return s
}

// arrayClosed reports whether the array starting in s is closed on it.
func arrayClosed(s string) bool {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '"' && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote == 0 && c == '[':
			depth++
		case quote == 0 && c == ']':
			depth--
			if depth == 0 {
				return true
			}
		}
	}
	return false
}
