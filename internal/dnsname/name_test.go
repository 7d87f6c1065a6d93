package dnsname

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	// 4 labels of 63 + 3 dots = 255; trim to exactly 253.
	name253 := long63 + "." + long63 + "." + long63 + "." + strings.Repeat("b", 61)
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string // substring of the error; "" = success
	}{
		{name: "simple", in: "example.com", want: "example.com"},
		{name: "uppercase is lowered", in: "API.Example.COM", want: "api.example.com"},
		{name: "trailing dot removed", in: "example.com.", want: "example.com"},
		{name: "single label", in: "localhost", want: "localhost"},
		{name: "underscore", in: "_acme-challenge.example.com", want: "_acme-challenge.example.com"},
		{name: "underscore srv", in: "_https._tcp.example.com", want: "_https._tcp.example.com"},
		{name: "punycode", in: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{name: "digits inside", in: "1e100.net", want: "1e100.net"},
		{name: "numeric labels not last", in: "10.0.0.example", want: "10.0.0.example"},
		{name: "hyphen inside", in: "a-b.c-d", want: "a-b.c-d"},
		{name: "63 char label", in: long63 + ".com", want: long63 + ".com"},
		{name: "253 chars", in: name253, want: name253},
		{name: "253 chars plus dot", in: name253 + ".", want: name253},
		{name: "hex-looking label not last", in: "0xff.example", want: "0xff.example"},
		{name: "0x word last", in: "a.0xyz", want: "a.0xyz"},

		{name: "empty", in: "", wantErr: "invalid name: empty"},
		{name: "root", in: ".", wantErr: "the root is not a host name"},
		{name: "two trailing dots", in: "a.com..", wantErr: "empty label at offset 6"},
		{name: "leading dot", in: ".a.com", wantErr: "empty label at offset 0"},
		{name: "empty label", in: "a..com", wantErr: "empty label at offset 2"},
		{name: "64 char label", in: strings.Repeat("a", 64) + ".com", wantErr: "is 64 characters, longer than 63"},
		{name: "254 chars", in: name253 + "b", wantErr: "254 characters, longer than 253"},
		{name: "huge", in: strings.Repeat("a.", 5000), wantErr: "longer than 253"},
		{name: "leading hyphen", in: "-a.com", wantErr: `label "-a" starts with '-'`},
		{name: "trailing hyphen", in: "a-.com", wantErr: `label "a-" ends with '-'`},
		{name: "space", in: "a b.com", wantErr: `character ' ' not allowed`},
		{name: "wildcard", in: "*.a.com", wantErr: `character '*' not allowed`},
		{name: "port", in: "a.com:443", wantErr: `character ':' not allowed`},
		{name: "ipv6", in: "::1", wantErr: `character ':' not allowed`},
		{name: "userinfo", in: "u@a.com", wantErr: `character '@' not allowed`},
		{name: "nul", in: "a\x00.com", wantErr: `character '\x00' not allowed`},
		{name: "unicode", in: "bücher.example", wantErr: "must be punycode"},
		{name: "ipv4", in: "10.0.0.1", wantErr: "an IPv4 address, not a name"},
		{name: "ipv4 trailing dot", in: "10.0.0.1.", wantErr: "an IPv4 address"},
		{name: "ipv4 short form", in: "127.1", wantErr: "an IPv4 address"},
		{name: "ipv4 decimal", in: "2130706433", wantErr: "an IPv4 address"},
		{name: "ipv4 hex", in: "0x7f000001", wantErr: "an IPv4 address"},
		{name: "ipv4 hex upper", in: "0X7F.0.0.0X1", wantErr: "an IPv4 address"},
		{name: "numeric tld", in: "example.123", wantErr: "an IPv4 address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %q, nil, want error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %q, want it to contain %q", tt.in, err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidName) {
					t.Fatalf("Parse(%q) error %v does not wrap ErrInvalidName", tt.in, err)
				}
				if !got.IsZero() {
					t.Fatalf("Parse(%q) = %q with an error, want the zero Name", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q) error = %v, want %q", tt.in, err, tt.want)
			}
			if got.String() != tt.want {
				t.Fatalf("Parse(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNameEquality(t *testing.T) {
	a, err := Parse("Example.COM.")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("example.com")
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("Parse(%q) != Parse(%q): %q vs %q", "Example.COM.", "example.com", a, b)
	}
}

func TestNameText(t *testing.T) {
	var n Name
	if err := n.UnmarshalText([]byte("A.Example.")); err != nil {
		t.Fatalf("UnmarshalText: %v", err)
	}
	out, _ := n.MarshalText()
	if string(out) != "a.example" {
		t.Fatalf("MarshalText(UnmarshalText(%q)) = %q, want %q", "A.Example.", out, "a.example")
	}
	if err := n.UnmarshalText([]byte("bad..name")); err == nil {
		t.Fatalf("UnmarshalText(%q) = nil, want error", "bad..name")
	}
	if n.String() != "a.example" {
		t.Fatalf("a failed UnmarshalText changed the Name to %q", n)
	}
}
