package learn

import (
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/policy"
)

func TestParseRecord(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		wantErr error
		check   func(t *testing.T, r Record)
	}{
		{
			name: "gateway deny",
			line: `{"time":"2026-12-01T10:00:00Z","level":"INFO","msg":"egress decision","component":"gateway","listener":"transparent","src":"10.244.1.2:5555","dst":"20.1.2.3:443","port":443,"name":"API.Example.com","proto":"tcp","app":"https","verdict":"deny","reason":"no_match","mode":"report","would_deny":true,"bytes_up":10,"bytes_down":20}`,
			check: func(t *testing.T, r Record) {
				if r.Component != ComponentGateway || r.Src != netip.MustParseAddr("10.244.1.2") || r.Dst != netip.MustParseAddrPort("20.1.2.3:443") ||
					r.Port != 443 || r.Name.String() != "api.example.com" || r.Proto != policy.ProtoTCP || r.App != policy.AppHTTPS ||
					!r.Denied() || !r.Report || !r.WouldDeny || r.BytesUp != 10 || r.BytesDown != 20 || r.Time.IsZero() {
					t.Errorf("ParseRecord = %+v", r)
				}
			},
		},
		{
			name: "gateway allow with rule, proxy name without dst",
			line: `{"msg":"egress decision","listener":"proxy","src":"[fd00::5]:4000","port":8443,"name":"x.test","proto":"tcp","app":"https","verdict":"allow","reason":"rule_allow","type":"application","group":"g","collection":"c","rule":"r","mode":"enforce"}`,
			check: func(t *testing.T, r Record) {
				if r.Src != netip.MustParseAddr("fd00::5") || r.Dst.IsValid() || r.Port != 8443 || r.Denied() ||
					r.Decision != (policy.Decision{Verdict: "allow", Reason: "rule_allow", Type: "application", Group: "g", Collection: "c", Rule: "r"}) {
					t.Errorf("ParseRecord = %+v", r)
				}
			},
		},
		{
			name: "dns deny",
			line: `{"time":"2026-12-01T10:00:00.5Z","msg":"dns decision","component":"dns","src":"10.244.0.10","proto":"tcp","qname":"evil.test.","qtype":"AAAA","verdict":"deny","reason":"no_match","rcode":"REFUSED","rule_type":"network"}`,
			check: func(t *testing.T, r Record) {
				if r.Component != ComponentDNS || r.Src != netip.MustParseAddr("10.244.0.10") || r.Name.String() != "evil.test" ||
					r.QType != "AAAA" || r.Proto != 0 || !r.Denied() || r.Decision.Type != policy.TypeNetwork {
					t.Errorf("ParseRecord = %+v", r)
				}
			},
		},
		{
			name: "invalid name kept as no name",
			line: `{"msg":"egress decision","src":"10.0.0.1:1","dst":"1.2.3.4:443","port":443,"name":"bad name!","proto":"tcp","app":"https","verdict":"deny","reason":"name_invalid"}`,
			check: func(t *testing.T, r Record) {
				if !r.Name.IsZero() || !r.Dst.IsValid() {
					t.Errorf("ParseRecord = %+v, want no name and a dst", r)
				}
			},
		},
		{name: "other message", line: `{"msg":"decision cache fill","src":"1.2.3.4"}`, wantErr: ErrSkip},
		{name: "no decision word", line: `{"msg":"cache fill"}`, wantErr: ErrSkip},
		{name: "not json", line: `egress decision but plain text`, wantErr: ErrSkip},
		{name: "json array", line: `["egress decision"]`, wantErr: ErrSkip},
		{name: "empty", line: ``, wantErr: ErrSkip},
		{name: "truncated record", line: `{"msg":"egress decision","src":"10.0.0.1:1"`, wantErr: ErrMalformed},
		{name: "bad src", line: `{"msg":"egress decision","src":"nope","verdict":"deny"}`, wantErr: ErrMalformed},
		{name: "bad verdict", line: `{"msg":"dns decision","src":"10.0.0.1","verdict":"maybe"}`, wantErr: ErrMalformed},
		{name: "bad port", line: `{"msg":"egress decision","src":"10.0.0.1:1","port":70000,"verdict":"deny"}`, wantErr: ErrMalformed},
		{name: "port of wrong type", line: `{"msg":"egress decision","src":"10.0.0.1:1","port":"443","verdict":"deny"}`, wantErr: ErrMalformed},
		{name: "bad proto", line: `{"msg":"egress decision","src":"10.0.0.1:1","proto":"sctp","verdict":"deny"}`, wantErr: ErrMalformed},
		{name: "too long", line: `{"msg":"egress decision","x":"` + strings.Repeat("a", MaxLineBytes) + `"}`, wantErr: ErrSkip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRecord([]byte(tt.line))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseRecord(%.80s) = %v, want %v", tt.line, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRecord(%.80s) = %v", tt.line, err)
			}
			tt.check(t, r)
		})
	}
}

func TestReaderSkipsLongLinesAndJunk(t *testing.T) {
	rec := string(gwLine(t, 1, "10.0.0.1:1", "1.2.3.4:443", 443, "a.test", "tcp", "https", "deny", "no_match"))
	input := strings.Join([]string{
		rec,
		strings.Repeat("x", 3*MaxLineBytes), // overlong, not held
		"garbage",
		`{"msg":"egress decision","src":"bad"}`,
		"",
		rec, // last line without a newline
	}, "\n")
	rd := NewReader(strings.NewReader(input))
	var got int
	for {
		_, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got++
	}
	if got != 2 || rd.Lines != 6 || rd.Skipped != 3 || rd.Malformed != 1 {
		t.Errorf("Reader: %d records, lines %d, skipped %d, malformed %d; want 2, 6, 3, 1", got, rd.Lines, rd.Skipped, rd.Malformed)
	}
	if cap(rd.buf) > 2*MaxLineBytes+64<<10 {
		t.Errorf("Reader buffer grew to %d bytes for an overlong line", cap(rd.buf))
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"msg":"egress decision","src":"10.0.0.1:1","dst":"1.2.3.4:443","port":443,"name":"a.test","proto":"tcp","app":"https","verdict":"deny","reason":"no_match"}`))
	f.Add([]byte(`{"msg":"dns decision","src":"10.0.0.1","qname":"a.test","qtype":"A","verdict":"deny","reason":"no_match"}`))
	f.Add([]byte(`{"msg":"egress decision","src":"[::1]:1","port":-1}`))
	f.Add([]byte(`not json decision`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseRecord(line)
		if err != nil {
			if !errors.Is(err, ErrSkip) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseRecord error %v wraps neither ErrSkip nor ErrMalformed", err)
			}
			return
		}
		if !r.Src.IsValid() || (r.Decision.Verdict != policy.VerdictAllow && r.Decision.Verdict != policy.VerdictDeny) {
			t.Fatalf("ParseRecord accepted %+v", r)
		}
		// Whatever parses can be learned from without panicking.
		l := New(Options{MaxKeys: 10})
		l.Add(r)
		_ = l.Proposal().Policy()
	})
}
