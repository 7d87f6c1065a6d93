package upstream

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Challenge is one authentication challenge of a WWW-Authenticate header
// (RFC 9110 §11.6.1): a scheme with either parameters or a token68.
type Challenge struct {
	Scheme  string            // lowercased, e.g. "bearer", "basic"
	Params  map[string]string // names lowercased, values unquoted
	Token68 string            // the token68 form, rare; empty when Params is used
}

// maxChallengeBytes bounds what ParseChallenges looks at.
const maxChallengeBytes = 16 << 10

var errChallenge = errors.New("malformed WWW-Authenticate")

// ParseChallenges parses the values of one or more WWW-Authenticate
// headers. It accepts several challenges per header, case-insensitive
// schemes and parameter names, quoted strings with backslash escapes, and
// (leniently, as registries send them) unquoted values containing ':' or
// '/'. On malformed input it returns the challenges parsed before the
// error together with the error.
func ParseChallenges(headers ...string) ([]Challenge, error) {
	total := 0
	var out []Challenge
	for _, h := range headers {
		total += len(h)
		if total > maxChallengeBytes {
			return out, fmt.Errorf("%w: longer than %d bytes", errChallenge, maxChallengeBytes)
		}
		p := challengeParser{s: h}
		var err error
		out, err = p.parse(out)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

type challengeParser struct {
	s string
	i int
}

func (p *challengeParser) end() bool { return p.i >= len(p.s) }

func (p *challengeParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", errChallenge, fmt.Sprintf(format, args...), p.i)
}

func (p *challengeParser) skipOWS() {
	for !p.end() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *challengeParser) skipListSeparators() {
	for !p.end() && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == ',') {
		p.i++
	}
}

func (p *challengeParser) token() string {
	start := p.i
	for !p.end() && isTchar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// paramAhead reports whether an auth-param (name BWS "=" BWS value)
// starts at the current position, without consuming anything.
func (p *challengeParser) paramAhead() bool {
	q := *p
	if q.token() == "" {
		return false
	}
	q.skipOWS()
	if q.end() || q.s[q.i] != '=' {
		return false
	}
	q.i++
	q.skipOWS()
	// "name==" is the padding of a token68, not a parameter.
	return !q.end() && q.s[q.i] != '=' && (q.s[q.i] == '"' || isLenientValueChar(q.s[q.i]))
}

func (p *challengeParser) parse(out []Challenge) ([]Challenge, error) {
	for {
		p.skipListSeparators()
		if p.end() {
			return out, nil
		}
		scheme := p.token()
		if scheme == "" {
			return out, p.errorf("expected an authentication scheme")
		}
		ch := Challenge{Scheme: strings.ToLower(scheme), Params: map[string]string{}}
		if !p.end() && p.s[p.i] != ' ' && p.s[p.i] != '\t' && p.s[p.i] != ',' {
			return out, p.errorf("unexpected %q after scheme", p.s[p.i])
		}
		p.skipOWS()
		if !p.end() && p.s[p.i] != ',' && !p.paramAhead() {
			t, err := p.token68()
			if err != nil {
				return out, err
			}
			ch.Token68 = t
			out = append(out, ch)
			continue
		}
		for p.paramAhead() {
			name := strings.ToLower(p.token())
			p.skipOWS()
			p.i++ // '='
			p.skipOWS()
			val, err := p.value()
			if err != nil {
				return out, err
			}
			if _, dup := ch.Params[name]; !dup {
				ch.Params[name] = val
			}
			p.skipOWS()
			if p.end() {
				break
			}
			if p.s[p.i] != ',' {
				return out, p.errorf("expected ',' after parameter %q", name)
			}
			p.skipListSeparators() // a following token that is no param starts the next challenge
		}
		out = append(out, ch)
	}
}

func (p *challengeParser) token68() (string, error) {
	start := p.i
	for !p.end() && isToken68Char(p.s[p.i]) {
		p.i++
	}
	if p.i == start {
		return "", p.errorf("unexpected %q", p.s[p.i])
	}
	for !p.end() && p.s[p.i] == '=' {
		p.i++
	}
	t := p.s[start:p.i]
	p.skipOWS()
	if !p.end() && p.s[p.i] != ',' {
		return "", p.errorf("unexpected %q after token68", p.s[p.i])
	}
	return t, nil
}

func (p *challengeParser) value() (string, error) {
	if p.s[p.i] != '"' {
		start := p.i
		for !p.end() && isLenientValueChar(p.s[p.i]) {
			p.i++
		}
		return p.s[start:p.i], nil
	}
	p.i++
	var b strings.Builder
	for {
		if p.end() {
			return "", p.errorf("unterminated quoted string")
		}
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c == '\\':
			p.i++
			if p.end() {
				return "", p.errorf("unterminated quoted string")
			}
			c = p.s[p.i]
			if !isQuotedChar(c) && c != '"' && c != '\\' {
				return "", p.errorf("control character in quoted string")
			}
		case !isQuotedChar(c):
			return "", p.errorf("control character in quoted string")
		}
		b.WriteByte(c)
		p.i++
	}
}

// isTchar: RFC 9110 tchar.
func isTchar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken68Char(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0
}

// isLenientValueChar accepts what registries put in unquoted values
// (realm=https://…, scope=repository:x:pull): visible ASCII and obs-text
// except the delimiters that end a value.
func isLenientValueChar(c byte) bool {
	return c > 0x20 && c != 0x7f && c != ',' && c != '"' && c != '\\'
}

// isQuotedChar: qdtext or the escaped part of a quoted-pair (HTAB, SP,
// visible ASCII, obs-text).
func isQuotedChar(c byte) bool {
	return c == '\t' || c >= 0x20 && c != 0x7f && c != '"' && c != '\\'
}

// String renders the challenge in canonical form (parameters sorted,
// values quoted); ParseChallenges reads it back to an equal Challenge.
func (c Challenge) String() string {
	if c.Token68 != "" {
		return c.Scheme + " " + c.Token68
	}
	names := make([]string, 0, len(c.Params))
	for k := range c.Params {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(c.Scheme)
	for i, k := range names {
		if i == 0 {
			b.WriteString(" ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString(`="`)
		v := c.Params[k]
		for j := 0; j < len(v); j++ {
			if v[j] == '"' || v[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(v[j])
		}
		b.WriteString(`"`)
	}
	return b.String()
}
