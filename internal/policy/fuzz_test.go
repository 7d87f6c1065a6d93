package policy

import (
	"strconv"
	"strings"
	"testing"
)

func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"123", "1000-2000", "*", "0", "65535", "65536", "2000-1000", "-", "1-", "-5", "08", "1--2", " 80", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parsePorts(s)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(s)) && s != "" {
				t.Fatalf("parsePorts(%q) error %q does not quote the input", s, err)
			}
			return
		}
		if r.lo < 1 || r.lo > r.hi {
			t.Fatalf("parsePorts(%q) = %d-%d, not a valid range", s, r.lo, r.hi)
		}
		// The canonical form parses back to the same range.
		back, err := parsePorts(r.String())
		if err != nil || back != r {
			t.Fatalf("parsePorts(%q).String() = %q parses to %v, %v", s, r.String(), back, err)
		}
	})
}

func FuzzParseProtocols(f *testing.F) {
	for _, s := range []string{"TCP", "udp", "Any", "ICMP", "http:80", "https:443", "Https:8443", "https", "ftp:21", "https:0", "http:65536", ":", "https:+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, dnat := range []bool{false, true} {
			ps, err := parseNetworkProto(s, dnat)
			if err == nil {
				if ps == 0 || (dnat && ps.has(ProtoICMP)) {
					t.Fatalf("parseNetworkProto(%q, %v) = %v", s, dnat, ps)
				}
				if up := strings.ToUpper(s); up != "TCP" && up != "UDP" && up != "ICMP" && up != "ANY" {
					t.Fatalf("parseNetworkProto(%q) accepted a non-protocol", s)
				}
			}
		}
		ap, err := parseAppProto(s)
		if err != nil {
			return
		}
		if ap.port == 0 || (ap.app != AppHTTP && ap.app != AppHTTPS) {
			t.Fatalf("parseAppProto(%q) = %+v", s, ap)
		}
		back, err := parseAppProto(ap.String())
		if err != nil || back != ap {
			t.Fatalf("parseAppProto(%q).String() = %q parses to %+v, %v", s, ap.String(), back, err)
		}
	})
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"*", "10.0.0.0/8", "10.0.0.1/8", "10.0.0.1", "::1", "2001:db8::/32", "::ffff:10.0.0.1", "::ffff:10.0.0.0/104", "fe80::1%eth0", "10.0.0.0/33", "", "1.2.3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, star, err := parseAddress(s, true)
		if err != nil {
			return
		}
		if star {
			if s != "*" {
				t.Fatalf("parseAddress(%q) = star", s)
			}
			return
		}
		if !p.IsValid() || p.Masked() != p || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			t.Fatalf("parseAddress(%q) = %v, not a canonical prefix", s, p)
		}
		if _, _, err := parseAddress(s, false); err != nil {
			t.Fatalf("parseAddress(%q, no star) = %v, want the same success", s, err)
		}
	})
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"*", "*.example.com", "a.example", "a.*.b", "*foo", "**", "*.", "10.0.0.1", "xn--bcher-kva.example"} {
		f.Add(s, "x.example.com")
	}
	f.Fuzz(func(t *testing.T, s, host string) {
		pat, err := parseTarget(s)
		if err != nil {
			return
		}
		if _, err := parseExactName(s); err == nil && pat.IsWildcard() {
			t.Fatalf("parseExactName(%q) accepted a wildcard", s)
		}
		// A compiled application rule with this target allows exactly the
		// names the pattern matches.
		p, err := Compile(Config{RuleCollectionGroups: []RuleCollectionGroup{group(100,
			coll("c", TypeApplication, 100, ActionAllow, appRule("r", "*", []string{"https:443"}, s)))}})
		if err != nil {
			t.Fatalf("Compile with target %q: %v", s, err)
		}
		n, err := parseExactName(host)
		if err != nil {
			return
		}
		fl := Flow{Src: addr("10.0.0.1"), Dst: addrPort("192.0.2.1:443"), Proto: ProtoTCP, App: AppHTTPS, Name: n}
		if got := p.Decide(fl).Allowed(); got != pat.Match(n) {
			t.Fatalf("Decide(%s) with target %q allowed = %v, pattern match = %v", n, s, got, pat.Match(n))
		}
		if got := p.AllowsName(fl.Src, n).Allowed(); got != pat.Match(n) {
			t.Fatalf("AllowsName(%s) with target %q = %v, pattern match = %v", n, s, got, pat.Match(n))
		}
	})
}
