package upstream

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseChallenges(t *testing.T) {
	p := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		in      []string
		want    []Challenge
		wantErr bool
	}{
		{name: "docker hub",
			in:   []string{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`},
			want: []Challenge{{Scheme: "bearer", Params: p("realm", "https://auth.docker.io/token", "service", "registry.docker.io", "scope", "repository:library/alpine:pull")}}},
		{name: "error param and spaces",
			in:   []string{`Bearer  realm = "https://r/token" ,  error="insufficient_scope"`},
			want: []Challenge{{Scheme: "bearer", Params: p("realm", "https://r/token", "error", "insufficient_scope")}}},
		{name: "case-insensitive scheme and names",
			in:   []string{`BASIC Realm="Registry Realm"`},
			want: []Challenge{{Scheme: "basic", Params: p("realm", "Registry Realm")}}},
		{name: "escapes",
			in:   []string{`Basic realm="a \"quoted\" \\ realm, with comma"`},
			want: []Challenge{{Scheme: "basic", Params: p("realm", `a "quoted" \ realm, with comma`)}}},
		{name: "several challenges in one header",
			in: []string{`Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`},
			want: []Challenge{
				{Scheme: "newauth", Params: p("realm", "apps", "type", "1", "title", `Login to "apps"`)},
				{Scheme: "basic", Params: p("realm", "simple")},
			}},
		{name: "bare schemes",
			in:   []string{`Negotiate, Basic realm="x"`},
			want: []Challenge{{Scheme: "negotiate", Params: p()}, {Scheme: "basic", Params: p("realm", "x")}}},
		{name: "several headers",
			in:   []string{`Basic realm="x"`, `Bearer realm="https://r/t"`},
			want: []Challenge{{Scheme: "basic", Params: p("realm", "x")}, {Scheme: "bearer", Params: p("realm", "https://r/t")}}},
		{name: "unquoted url value",
			in:   []string{`Bearer realm=https://r.test/token,service=r.test,scope=repository:a/b:pull`},
			want: []Challenge{{Scheme: "bearer", Params: p("realm", "https://r.test/token", "service", "r.test", "scope", "repository:a/b:pull")}}},
		{name: "token68",
			in:   []string{`Negotiate abc+/def==, Basic realm="x"`},
			want: []Challenge{{Scheme: "negotiate", Params: p(), Token68: "abc+/def=="}, {Scheme: "basic", Params: p("realm", "x")}}},
		{name: "duplicate parameter keeps the first",
			in:   []string{`Bearer realm="a", realm="b"`},
			want: []Challenge{{Scheme: "bearer", Params: p("realm", "a")}}},
		{name: "empty and stray commas",
			in:   []string{``, ` , ,Basic realm="x",,`},
			want: []Challenge{{Scheme: "basic", Params: p("realm", "x")}}},
		{name: "unterminated quote", in: []string{`Bearer realm="https://r`}, wantErr: true},
		{name: "escape at the end", in: []string{`Bearer realm="x\`}, wantErr: true},
		{name: "control character", in: []string{"Bearer realm=\"a\x01b\""}, wantErr: true},
		{name: "junk after value", in: []string{`Bearer realm="a" "b"`}, wantErr: true},
		{name: "no scheme", in: []string{`="x"`}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseChallenges(tt.in...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseChallenges(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseChallenges(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseChallengesBounded(t *testing.T) {
	big := make([]byte, maxChallengeBytes+1)
	for i := range big {
		big[i] = 'a'
	}
	if _, err := ParseChallenges(string(big)); err == nil {
		t.Errorf("ParseChallenges(%d bytes) = nil error, want a size error", len(big))
	}
}
