package dnsname

import (
	"errors"
	"strings"
	"testing"
)

func mustName(t testing.TB, s string) Name {
	t.Helper()
	n, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return n
}

func TestParsePattern(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     string
		wildcard bool
		wantErr  string
	}{
		{name: "exact", in: "api.example.com", want: "api.example.com"},
		{name: "exact normalized", in: "API.Example.com.", want: "api.example.com"},
		{name: "suffix", in: "*.example.com", want: "*.example.com", wildcard: true},
		{name: "suffix normalized", in: "*.Example.COM.", want: "*.example.com", wildcard: true},
		{name: "suffix single label", in: "*.local", want: "*.local", wildcard: true},
		{name: "any", in: "*", want: "*", wildcard: true},

		{name: "empty", in: "", wantErr: "invalid name: empty"},
		{name: "middle wildcard", in: "a.*.b", wantErr: "'*' is allowed only as the whole first label"},
		{name: "partial label wildcard", in: "*foo.com", wantErr: "'*' is allowed only"},
		{name: "double star", in: "**", wantErr: "'*' is allowed only"},
		{name: "double wildcard label", in: "*.*.com", wantErr: "'*' is allowed only"},
		{name: "trailing wildcard", in: "foo.*", wantErr: "'*' is allowed only"},
		{name: "star dot", in: "*.", wantErr: "suffix: invalid name: empty"},
		{name: "label prefix wildcard", in: "md-*.blob.core.windows.net", wantErr: "'*' is allowed only"},
		{name: "bad suffix", in: "*.a..b", wantErr: "empty label"},
		{name: "ip suffix", in: "*.0.0.1", wantErr: "an IPv4 address"},
		{name: "ip exact", in: "192.0.2.1", wantErr: "an IPv4 address"},
		{name: "dot star", in: ".*", wantErr: "'*' is allowed only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePattern(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParsePattern(%q) = %q, nil, want error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidPattern) {
					t.Fatalf("ParsePattern(%q) error = %q, want ErrInvalidPattern containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePattern(%q) error = %v, want %q", tt.in, err, tt.want)
			}
			if got.String() != tt.want || got.IsWildcard() != tt.wildcard {
				t.Fatalf("ParsePattern(%q) = %q (wildcard %v), want %q (wildcard %v)", tt.in, got, got.IsWildcard(), tt.want, tt.wildcard)
			}
		})
	}
}

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		name    string
		want    bool
	}{
		{"example.com", "example.com", true},
		{"example.com", "EXAMPLE.com.", true},
		{"example.com", "a.example.com", false},
		{"example.com", "example.co", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "a.b.example.com", true}, // Azure: "*" on the left matches anything to the left
		{"*.example.com", "example.com", false},    // the apex needs its own entry
		{"*.example.com", "badexample.com", false}, // no partial-label match
		{"*.example.com", "a.example.com.evil", false},
		{"*.example.com", "example.com.a", false},
		{"*.hcp.eastus.azmk8s.io", "x1.hcp.eastus.azmk8s.io", true},
		{"*.hcp.eastus.azmk8s.io", "hcp.eastus.azmk8s.io", false},
		{"*.com", "example.com", true},
		{"*", "example.com", true},
		{"*", "localhost", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.name, func(t *testing.T) {
			p, err := ParsePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Match(mustName(t, tt.name)); got != tt.want {
				t.Fatalf("ParsePattern(%q).Match(%q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
			}
		})
	}
}

func TestPatternZeroValues(t *testing.T) {
	star, _ := ParsePattern("*")
	if star.Match(Name{}) {
		t.Fatalf("ParsePattern(\"*\").Match(Name{}) = true, want false")
	}
	var zero Pattern
	if zero.Match(mustName(t, "example.com")) {
		t.Fatalf("Pattern{}.Match(example.com) = true, want false")
	}
	if !zero.IsZero() || zero.String() != "" {
		t.Fatalf("Pattern{} = %q (IsZero %v), want \"\" (true)", zero, zero.IsZero())
	}
	if p := ExactPattern(Name{}); !p.IsZero() {
		t.Fatalf("ExactPattern(Name{}) = %q, want the zero Pattern", p)
	}
	e := ExactPattern(mustName(t, "a.example"))
	if n, ok := e.Exact(); !ok || n.String() != "a.example" {
		t.Fatalf("ExactPattern(a.example).Exact() = %q, %v, want a.example, true", n, ok)
	}
	if _, ok := star.Exact(); ok {
		t.Fatalf("ParsePattern(\"*\").Exact() ok = true, want false")
	}
}

func TestPatternText(t *testing.T) {
	var p Pattern
	if err := p.UnmarshalText([]byte("*.Example.com")); err != nil {
		t.Fatal(err)
	}
	out, _ := p.MarshalText()
	if string(out) != "*.example.com" {
		t.Fatalf("MarshalText(UnmarshalText(%q)) = %q, want %q", "*.Example.com", out, "*.example.com")
	}
	if err := p.UnmarshalText([]byte("a.*.b")); err == nil {
		t.Fatalf("UnmarshalText(%q) = nil, want error", "a.*.b")
	}
}
