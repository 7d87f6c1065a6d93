package upstream

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseChallenge: WWW-Authenticate comes from upstreams, so the parser
// must never panic, must only produce lowercase tokens as schemes and
// parameter names, and what it produces must survive a render/parse round
// trip unchanged.
func FuzzParseChallenge(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`,
		`Basic realm="Registry Realm"`,
		`Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`,
		`Negotiate abc+/def==, Basic realm="x"`,
		`Bearer realm=https://r.test/token,scope=repository:a/b:pull error="insufficient_scope"`,
		`Bearer realm="a\`,
		` , ,Basic realm="x",,`,
		"Bearer realm=\"\t\x80\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseChallenges(s)
		if err != nil {
			return
		}
		var rendered []string
		for _, c := range got {
			if c.Scheme == "" || c.Scheme != strings.ToLower(c.Scheme) {
				t.Fatalf("ParseChallenges(%q): scheme %q is not a lowercase token", s, c.Scheme)
			}
			for k := range c.Params {
				if k == "" || k != strings.ToLower(k) {
					t.Fatalf("ParseChallenges(%q): parameter name %q is not a lowercase token", s, k)
				}
			}
			rendered = append(rendered, c.String())
		}
		again, err := ParseChallenges(strings.Join(rendered, ", "))
		if err != nil {
			t.Fatalf("ParseChallenges(%q) = %+v, rendered %q, which does not parse: %v", s, got, rendered, err)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Fatalf("round trip of %q changed (-first +second):\n%s", s, diff)
		}
	})
}

// FuzzParseTokenResponse: a token server's body comes from the network
// (or from wherever a realm pointed), so the parser must never panic, and
// a token it accepts must be non-empty, sendable in a header, and found
// under an exactly named member.
func FuzzParseTokenResponse(f *testing.F) {
	for _, s := range []string{
		`{"token":"abc","expires_in":300}`,
		`{"access_token":"abc","issued_at":"2026-01-01T00:00:00Z"}`,
		`{"Token":"abc"}`,
		`{"token":"","access_token":"b"}`,
		`{"token":1}`,
		`{"token":"a","expires_in":1.5}`,
		`null`,
		`[]`,
		`{"token":"a\u0000b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, _, err := parseTokenResponse(body)
		if err != nil {
			return
		}
		if tok == "" || !headerSafe(tok) {
			t.Errorf("parseTokenResponse(%q) = %q: empty or not header-safe", body, tok)
		}
		if !strings.Contains(string(body), `"token"`) && !strings.Contains(string(body), `"access_token"`) &&
			!strings.Contains(string(body), `\u`) {
			t.Errorf("parseTokenResponse(%q) = %q without a token or access_token member", body, tok)
		}
	})
}
