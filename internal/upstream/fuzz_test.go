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
