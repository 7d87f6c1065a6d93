package sniff

import (
	"bytes"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
)

func TestParseRealClientHellos(t *testing.T) {
	tests := []struct {
		name    string
		cfg     *tls.Config
		want    string
		wantECH bool
	}{
		{name: "tls13 with sni", cfg: &tls.Config{ServerName: "example.com"}, want: "example.com"},
		{name: "tls13 sni case kept", cfg: &tls.Config{ServerName: "API.Example.com"}, want: "API.Example.com"},
		{name: "tls12 only with sni", cfg: &tls.Config{ServerName: "mcr.microsoft.com", MaxVersion: tls.VersionTLS12}, want: "mcr.microsoft.com"},
		{name: "tls10 only with sni", cfg: &tls.Config{ServerName: "old.example", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, want: "old.example"},
		{name: "without sni", cfg: &tls.Config{InsecureSkipVerify: true}, want: ""},
		{name: "ip server name sends no sni", cfg: &tls.Config{ServerName: "192.0.2.1"}, want: ""},
		{name: "alpn and long name", cfg: &tls.Config{ServerName: strings.Repeat("a", 63) + ".example", NextProtos: []string{"h2", "http/1.1"}}, want: strings.Repeat("a", 63) + ".example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := realHello(t, tt.cfg)
			got, err := Parse(rec)
			if err != nil {
				t.Fatalf("Parse(hello) error = %v, want name %q", err, tt.want)
			}
			want := Result{Kind: TLS, Name: tt.want, Len: len(rec), ECH: tt.wantECH}
			if got != want {
				t.Fatalf("Parse(hello) = %+v, want %+v", got, want)
			}
			// Bytes after the hello (early data, the next flight) change nothing.
			withMore := append(append([]byte{}, rec...), 0x17, 3, 3, 0, 1, 0)
			if got, err := Parse(withMore); err != nil || got != want {
				t.Fatalf("Parse(hello+more) = %+v, %v, want %+v, nil", got, err, want)
			}
			// Every strict prefix asks for more.
			for i := 0; i < len(rec); i++ {
				if _, err := Parse(rec[:i]); !errors.Is(err, ErrNeedMore) {
					t.Fatalf("Parse(hello[:%d]) error = %v, want ErrNeedMore", i, err)
				}
			}
		})
	}
}

func TestParseECH(t *testing.T) {
	cfg := &tls.Config{
		ServerName:                     "secret.example",
		MinVersion:                     tls.VersionTLS13,
		EncryptedClientHelloConfigList: echConfigList(t, "public.example"),
	}
	rec := realHello(t, cfg)
	got, err := Parse(rec)
	if err != nil {
		t.Fatalf("Parse(ECH hello) error = %v", err)
	}
	want := Result{Kind: TLS, Name: "public.example", ECH: true, Len: len(rec)}
	if got != want {
		t.Fatalf("Parse(ECH hello) = %+v, want %+v (the outer name only)", got, want)
	}
	if bytes.Contains(rec, []byte("secret.example")) {
		t.Fatalf("the ECH hello carries the inner name in clear; the test does not exercise ECH")
	}
}

func TestParseFragmentedRealHello(t *testing.T) {
	rec := realHello(t, &tls.Config{ServerName: "frag.example"})
	msgLen := len(rec) - recordHeaderLen
	tests := []struct {
		name  string
		sizes []int
	}{
		{name: "one byte then rest", sizes: []int{1}},
		{name: "header split", sizes: []int{2, 1, 1}},
		{name: "header whole then body split", sizes: []int{4, 100, 7}},
		{name: "split inside sni", sizes: []int{msgLen / 2}},
		{name: "one byte records", sizes: ones(msgLen)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := refragment(rec, tt.sizes...)
			got, err := Parse(in)
			want := Result{Kind: TLS, Name: "frag.example", Len: len(in)}
			if err != nil || got != want {
				t.Fatalf("Parse(fragmented) = %+v, %v, want %+v, nil", got, err, want)
			}
			for i := 0; i < len(in); i++ {
				if _, err := Parse(in[:i]); !errors.Is(err, ErrNeedMore) {
					t.Fatalf("Parse(fragmented[:%d]) error = %v, want ErrNeedMore", i, err)
				}
			}
		})
	}
}

func ones(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

func TestParseCraftedTLS(t *testing.T) {
	good := handshakeMsg(handshakeClientHello, helloBody(ext(extServerName, sniData("a.example"))))
	big := handshakeMsg(handshakeClientHello, helloBody(append(ext(0x15, make([]byte, MaxClientHello)), ext(extServerName, sniData("a.example"))...)))
	tests := []struct {
		name    string
		in      []byte
		want    Result
		wantErr error  // errors.Is target; nil = success
		errText string // substring of the error
	}{
		{name: "minimal with sni", in: records(good), want: Result{Kind: TLS, Name: "a.example", Len: len(good) + 5}},
		{name: "no extensions block", in: records(handshakeMsg(1, helloBody(nil))), want: Result{Kind: TLS, Len: 5 + 4 + len(helloBody(nil))}},
		{name: "empty extensions block", in: records(handshakeMsg(1, helloBody([]byte{}))), want: Result{Kind: TLS, Len: 5 + 4 + len(helloBody([]byte{}))}},
		{name: "unknown name type skipped", in: records(handshakeMsg(1, helloBody(ext(0, []byte{0, 4, 9, 0, 1, 'x'})))), want: Result{Kind: TLS, Len: 5 + 4 + len(helloBody(ext(0, []byte{0, 4, 9, 0, 1, 'x'})))}},
		{name: "ech grease outer", in: records(handshakeMsg(1, helloBody(append(ext(0, sniData("pub.example")), ext(extEncryptedClientHelo, []byte{0, 1, 2})...)))), want: Result{Kind: TLS, Name: "pub.example", ECH: true, Len: 5 + 4 + len(helloBody(append(ext(0, sniData("pub.example")), ext(extEncryptedClientHelo, []byte{0, 1, 2})...)))}},

		{name: "empty", in: nil, wantErr: ErrNeedMore},
		{name: "only type byte", in: []byte{0x16}, wantErr: ErrNeedMore},
		{name: "0x16 then not tls", in: []byte{0x16, 0x01, 0x00}, want: Result{Kind: Unknown}},
		{name: "sslv2 hello", in: []byte{0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15}, want: Result{Kind: TLS}, wantErr: ErrSSLv2},
		{name: "high bit short", in: []byte{0x80, 0x2e}, wantErr: ErrNeedMore},
		{name: "high bit not sslv2", in: []byte{0x80, 0x2e, 0x05}, want: Result{Kind: Unknown}},
		{name: "server hello", in: records(handshakeMsg(2, helloBody(nil))), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "handshake message type 2"},
		{name: "empty record", in: []byte{0x16, 3, 1, 0, 0}, want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "empty handshake record"},
		{name: "record over 2^14", in: []byte{0x16, 3, 1, 0x40, 0x01}, want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "longer than 2^14"},
		{name: "alert between fragments", in: append(records(good[:10]), 0x15, 3, 3, 0, 2, 2, 40), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "record type 21"},
		{name: "bad version in second record", in: append(records(good[:10]), 0x16, 2, 0, 0, 1, 0), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "record version 2.0"},
		{name: "handshake too large", in: []byte{0x16, 3, 1, 0, 4, 1, 0, 0x40, 0x00}, want: Result{Kind: TLS}, wantErr: ErrTooLarge},
		{name: "records beyond the bound", in: records(big, 16000), want: Result{Kind: TLS}, wantErr: ErrTooLarge},
		{name: "two host names", in: records(handshakeMsg(1, helloBody(ext(0, sniData("a.example", "b.example"))))), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "two host_name entries"},
		{name: "two sni extensions", in: records(handshakeMsg(1, helloBody(append(ext(0, sniData("a.example")), ext(0, sniData("b.example"))...)))), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "two server_name extensions"},
		{name: "two ech extensions", in: records(handshakeMsg(1, helloBody(append(ext(extEncryptedClientHelo, nil), ext(extEncryptedClientHelo, nil)...)))), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "two encrypted_client_hello"},
		{name: "empty host name", in: records(handshakeMsg(1, helloBody(ext(0, sniData(""))))), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "empty host_name"},
		{name: "nul in host name", in: records(handshakeMsg(1, helloBody(ext(0, sniData("a\x00.example"))))), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "byte 0x00"},
		{name: "space in host name", in: records(handshakeMsg(1, helloBody(ext(0, sniData("a example"))))), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "byte 0x20"},
		{name: "empty sni extension", in: records(handshakeMsg(1, helloBody(ext(0, nil)))), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "server_name extension"},
		{name: "sni list longer than data", in: records(handshakeMsg(1, helloBody(ext(0, []byte{0, 9, 0, 0, 1, 'a'})))), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "server_name extension"},
		{name: "truncated extension", in: records(handshakeMsg(1, helloBody([]byte{0, 0, 0, 9, 1}))), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "truncated extension"},
		{name: "junk after extensions", in: records(handshakeMsg(1, append(helloBody(ext(0, sniData("a.example"))), 0))), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "does not fill"},
		{name: "truncated body", in: records(handshakeMsg(1, helloBody(nil)[:20])), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "truncated client hello"},
		{name: "odd cipher suites", in: records(handshakeMsg(1, append(append(be16(nil, 0x0303), make([]byte, 33)...), 0, 3, 1, 2, 3, 1, 0))), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "cipher suites list of 3 bytes"},
		{name: "long session id", in: records(handshakeMsg(1, append(append(be16(nil, 0x0303), make([]byte, 32)...), append([]byte{33}, make([]byte, 33)...)...))), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "session id of 33 bytes"},
		{name: "client version 2", in: records(handshakeMsg(1, append([]byte{2, 0}, helloBody(nil)[2:]...))), want: Result{Kind: TLS}, wantErr: ErrMalformed, errText: "client version major 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("Parse(%x) error = %v, want %+v", tt.in, err, tt.want)
			}
			if tt.wantErr != nil && (!errors.Is(err, tt.wantErr) || !strings.Contains(errText(err), tt.errText)) {
				t.Fatalf("Parse(%x) error = %v, want %v containing %q", tt.in, err, tt.wantErr, tt.errText)
			}
			if errors.Is(err, ErrNeedMore) {
				return
			}
			got.Len, tt.want.Len = keepLen(got, tt.want, err)
			if got != tt.want {
				t.Fatalf("Parse(%x) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// keepLen compares Len only on success: errors leave it unspecified.
func keepLen(got, want Result, err error) (int, int) {
	if err != nil {
		return 0, 0
	}
	return got.Len, want.Len
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
