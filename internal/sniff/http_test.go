package sniff

import (
	"errors"
	"strings"
	"testing"
)

func TestParseHTTP(t *testing.T) {
	long := "GET / HTTP/1.1\r\nHost: a.example\r\nX-Pad: " + strings.Repeat("a", MaxHTTPHead) + "\r\n\r\n"
	tests := []struct {
		name    string
		in      string
		want    Result // Len -1 = len(in)
		wantErr error
		errText string
	}{
		{name: "origin form", in: "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", want: Result{Kind: HTTP, Name: "example.com", Method: "GET", Len: -1}},
		{name: "host with port", in: "GET /x?y HTTP/1.1\r\nUser-Agent: t\r\nhost: example.com:8080\r\nAccept: */*\r\n\r\n", want: Result{Kind: HTTP, Name: "example.com", Port: 8080, Method: "GET", Len: -1}},
		{name: "host empty port", in: "GET / HTTP/1.1\r\nHost: example.com:\r\n\r\n", want: Result{Kind: HTTP, Name: "example.com", Method: "GET", Len: -1}},
		{name: "host ows", in: "GET / HTTP/1.1\r\nHost: \t example.com \t\r\n\r\n", want: Result{Kind: HTTP, Name: "example.com", Method: "GET", Len: -1}},
		{name: "absolute form wins over host", in: "GET http://a.example:81/p HTTP/1.1\r\nHost: b.example\r\n\r\n", want: Result{Kind: HTTP, Name: "a.example", Port: 81, Method: "GET", Len: -1}},
		{name: "absolute form no path", in: "GET http://a.example HTTP/1.1\r\n\r\n", want: Result{Kind: HTTP, Name: "a.example", Method: "GET", Len: -1}},
		{name: "absolute form query", in: "GET HTTP://A.example?q=@b HTTP/1.0\r\n\r\n", want: Result{Kind: HTTP, Name: "A.example", Method: "GET", Len: -1}},
		{name: "absolute https", in: "POST https://a.example/x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\nabc", want: Result{Kind: HTTP, Name: "a.example", Method: "POST", Len: -4}},
		{name: "connect", in: "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", want: Result{Kind: HTTP, Name: "a.example", Port: 443, Method: "CONNECT", Len: -1}},
		{name: "connect ipv6", in: "CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n", want: Result{Kind: HTTP, Name: "2001:db8::1", Port: 443, Method: "CONNECT", Len: -1}},
		{name: "ipv6 host", in: "GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n", want: Result{Kind: HTTP, Name: "2001:db8::1", Port: 8080, Method: "GET", Len: -1}},
		{name: "ipv4 host", in: "GET / HTTP/1.1\r\nHost: 192.0.2.1\r\n\r\n", want: Result{Kind: HTTP, Name: "192.0.2.1", Method: "GET", Len: -1}},
		{name: "lf line endings", in: "GET / HTTP/1.1\nHost: example.com\n\n", want: Result{Kind: HTTP, Name: "example.com", Method: "GET", Len: -1}},
		{name: "options asterisk", in: "OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n", want: Result{Kind: HTTP, Name: "example.com", Method: "OPTIONS", Len: -1}},
		{name: "http10 without host", in: "GET / HTTP/1.0\r\n\r\n", want: Result{Kind: HTTP, Method: "GET", Len: -1}},
		{name: "http11 without host", in: "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", want: Result{Kind: HTTP, Method: "GET", Len: -1}},
		{name: "empty host", in: "GET / HTTP/1.1\r\nHost:\r\n\r\n", want: Result{Kind: HTTP, Method: "GET", Len: -1}},
		{name: "body not counted", in: "GET / HTTP/1.1\r\nHost: a.example\r\n\r\nGET / HTTP/1.1\r\n", want: Result{Kind: HTTP, Name: "a.example", Method: "GET", Len: 35}},

		{name: "one letter", in: "G", wantErr: ErrNeedMore},
		{name: "method only", in: "GET", wantErr: ErrNeedMore},
		{name: "line unfinished", in: "GET / HTTP/1.1", wantErr: ErrNeedMore},
		{name: "head unfinished", in: "GET / HTTP/1.1\r\nHost: a.example\r\n", wantErr: ErrNeedMore},
		{name: "head unfinished cr", in: "GET / HTTP/1.1\r\nHost: a.example\r\n\r", wantErr: ErrNeedMore},
		{name: "head too large", in: long, want: Result{Kind: HTTP}, wantErr: ErrTooLarge},
		{name: "line too large", in: "GET /" + strings.Repeat("a", MaxHTTPHead), want: Result{Kind: HTTP}, wantErr: ErrTooLarge},

		{name: "ssh banner", in: "SSH-2.0-OpenSSH_9.6\r\n", want: Result{Kind: Unknown}},
		{name: "binary", in: "\x00\x01\x02", want: Result{Kind: Unknown}},
		{name: "method then binary", in: "GET \x00\x01", want: Result{Kind: Unknown}},
		{name: "long token", in: strings.Repeat("A", 40), want: Result{Kind: Unknown}},
		{name: "http09", in: "GET /\r\n", want: Result{Kind: Unknown}},
		{name: "smtp", in: "EHLO example.com\r\n", want: Result{Kind: Unknown}},

		{name: "http2 preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "only HTTP/1.x"},
		{name: "two hosts", in: "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "2 Host header fields"},
		{name: "space before colon", in: "GET / HTTP/1.1\r\nHost : a.example\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "header field name"},
		{name: "obs fold", in: "GET / HTTP/1.1\r\nHost: a.example\r\n b.example\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "line folding"},
		{name: "no colon", in: "GET / HTTP/1.1\r\nHost a.example\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "no field name"},
		{name: "nul in host", in: "GET / HTTP/1.1\r\nHost: a\x00.example\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "control character 0x00"},
		{name: "bare cr in value", in: "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "control character 0x0d"},
		{name: "userinfo", in: "GET http://allowed.example@evil.example/ HTTP/1.1\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "userinfo"},
		{name: "percent in host", in: "GET / HTTP/1.1\r\nHost: a%2eexample\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "host contains '%'"},
		{name: "bad host even with absolute target", in: "GET http://a.example/ HTTP/1.1\r\nHost: a b\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "Host \"a b\""},
		{name: "port zero", in: "GET / HTTP/1.1\r\nHost: a.example:0\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "port out of range"},
		{name: "port too big", in: "GET / HTTP/1.1\r\nHost: a.example:65536\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "port out of range"},
		{name: "port not number", in: "GET / HTTP/1.1\r\nHost: a.example:https\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "port is not a number"},
		{name: "two colons", in: "GET / HTTP/1.1\r\nHost: 2001:db8::1\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "more than one ':'"},
		{name: "bracket not v6", in: "GET / HTTP/1.1\r\nHost: [192.0.2.1]\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "not an IPv6 address"},
		{name: "bracket junk", in: "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "junk after ']'"},
		{name: "unclosed bracket", in: "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "unclosed"},
		{name: "ftp scheme", in: "GET ftp://a.example/ HTTP/1.1\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "scheme ftp"},
		{name: "empty authority", in: "GET http:///x HTTP/1.1\r\nHost: a.example\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "empty host"},
		{name: "relative target", in: "GET a.example HTTP/1.1\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "not origin-form"},
		{name: "connect without port", in: "CONNECT a.example HTTP/1.1\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "want host:port"},
		{name: "control in target", in: "GET /a\rb HTTP/1.1\r\n\r\n", want: Result{Kind: HTTP}, wantErr: ErrMalformed, errText: "request target"},
		{name: "double space", in: "GET  / HTTP/1.1\r\n\r\n", want: Result{Kind: Unknown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if tt.wantErr == nil && err != nil {
				t.Fatalf("Parse(%q) error = %v, want %+v", tt.in, err, tt.want)
			}
			if tt.wantErr != nil && (!errors.Is(err, tt.wantErr) || !strings.Contains(errText(err), tt.errText)) {
				t.Fatalf("Parse(%q) error = %v, want %v containing %q", tt.in, err, tt.wantErr, tt.errText)
			}
			if errors.Is(err, ErrNeedMore) {
				return
			}
			want := tt.want
			switch {
			case err != nil:
				got.Len, got.Method = 0, ""
			case want.Len == -1:
				want.Len = len(tt.in)
			case want.Len < -1:
				want.Len = len(tt.in) + want.Len + 1
			}
			if got != want {
				t.Fatalf("Parse(%q) = %+v, want %+v", tt.in, got, want)
			}
			if err == nil && got.Kind == HTTP {
				for i := 0; i < got.Len; i++ {
					if _, err := Parse([]byte(tt.in[:i])); !errors.Is(err, ErrNeedMore) {
						t.Fatalf("Parse(%q) error = %v, want ErrNeedMore", tt.in[:i], err)
					}
				}
			}
		})
	}
}
