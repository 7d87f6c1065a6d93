package dnsname

import (
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"example.com", "Example.COM.", "_srv._tcp.a", "xn--bcher-kva.example", "a..b", "-a", "a-",
		"10.0.0.1", "0x7f", "127.1", "bücher", "a b", strings.Repeat("a", 64), strings.Repeat("a.", 127) + "a", ".", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			if !n.IsZero() {
				t.Fatalf("Parse(%q) = %q with error %v, want the zero Name", s, n, err)
			}
			return
		}
		v := n.String()
		if v == "" || len(v) > MaxNameLength || strings.HasSuffix(v, ".") || strings.ToLower(v) != v {
			t.Fatalf("Parse(%q) = %q, not normalized", s, v)
		}
		for _, label := range strings.Split(v, ".") {
			if label == "" || len(label) > MaxLabelLength || label[0] == '-' || label[len(label)-1] == '-' {
				t.Fatalf("Parse(%q) = %q, label %q breaks the label rules", s, v, label)
			}
		}
		again, err := Parse(v)
		if err != nil || again != n {
			t.Fatalf("Parse(Parse(%q)) = %q, %v, want %q (idempotent)", s, again, err, n)
		}
		if !strings.EqualFold(strings.TrimSuffix(s, "."), v) {
			t.Fatalf("Parse(%q) = %q, not the same name", s, v)
		}
	})
}

func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"*", "*.example.com", "example.com", "a.*.b", "*foo.com", "**", "*.", "*.*", "*.10.0.0.1", "*.A.B."} {
		f.Add(s, "x.example.com")
	}
	f.Fuzz(func(t *testing.T, s, name string) {
		p, err := ParsePattern(s)
		if err != nil {
			if !p.IsZero() {
				t.Fatalf("ParsePattern(%q) = %q with error, want the zero Pattern", s, p)
			}
			return
		}
		again, err := ParsePattern(p.String())
		if err != nil || again != p {
			t.Fatalf("ParsePattern(ParsePattern(%q).String()) = %q, %v, want %q", s, again, err, p)
		}
		if strings.Contains(strings.TrimPrefix(p.String(), "*."), "*") && p.String() != "*" {
			t.Fatalf("ParsePattern(%q) = %q: '*' outside the leading label", s, p)
		}
		n, err := Parse(name)
		if err != nil {
			return
		}
		got := p.Match(n)
		// Reference semantics, written independently of Match.
		var want bool
		switch ps := p.String(); {
		case ps == "*":
			want = true
		case strings.HasPrefix(ps, "*."):
			suffix := ps[2:]
			labels := strings.Split(n.String(), ".")
			for i := 1; i < len(labels); i++ {
				if strings.Join(labels[i:], ".") == suffix {
					want = true
				}
			}
		default:
			want = ps == n.String()
		}
		if got != want {
			t.Fatalf("ParsePattern(%q).Match(%q) = %v, want %v", s, n, got, want)
		}
	})
}
