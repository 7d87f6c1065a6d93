package sniff

import (
	"bytes"
	"crypto/tls"
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	hello := realHello(f, &tls.Config{ServerName: "fuzz.example"})
	f.Add(hello)
	f.Add(refragment(hello, 1, 2, 3, 50))
	f.Add(realHello(f, &tls.Config{InsecureSkipVerify: true}))
	f.Add(realHello(f, &tls.Config{ServerName: "e.example", MaxVersion: tls.VersionTLS12}))
	f.Add(records(handshakeMsg(1, helloBody(ext(0, sniData("a.example", "b.example"))))))
	f.Add([]byte{0x80, 0x2e, 0x01, 0x03, 0x01})
	f.Add([]byte("GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"))
	f.Add([]byte("GET http://a.example:81/p HTTP/1.1\r\nHost: b.example\r\n\r\n"))
	f.Add([]byte("CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\nHost: a\nHost: b\n\n"))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Add([]byte("SSH-2.0-x\r\n"))
	f.Fuzz(func(t *testing.T, p []byte) {
		res, err := Parse(p)
		again, err2 := Parse(p)
		if res != again || errText(err) != errText(err2) {
			t.Fatalf("Parse(%q) is not deterministic: %+v, %v then %+v, %v", p, res, err, again, err2)
		}
		switch {
		case errors.Is(err, ErrNeedMore):
			if len(p) >= MaxClientHello {
				t.Fatalf("Parse(%d bytes) = ErrNeedMore beyond the bound %d", len(p), MaxClientHello)
			}
			if res.Kind == HTTP && len(p) >= MaxHTTPHead {
				t.Fatalf("Parse(%d bytes) = ErrNeedMore beyond the HTTP bound", len(p))
			}
		case err != nil:
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrSSLv2) {
				t.Fatalf("Parse(%q) error %v wraps no sniff error", p, err)
			}
		case res.Kind == Unknown:
			if res != (Result{}) {
				t.Fatalf("Parse(%q) = %+v: Unknown with fields set", p, res)
			}
		default:
			if res.Len <= 0 || res.Len > len(p) {
				t.Fatalf("Parse(%q).Len = %d, outside 1..%d", p, res.Len, len(p))
			}
			if bytes.ContainsAny([]byte(res.Name), " \r\n\x00") {
				t.Fatalf("Parse(%q).Name = %q contains whitespace or NUL", p, res.Name)
			}
			// The decision rests on the first Len bytes only.
			head, err := Parse(p[:res.Len])
			if err != nil || head != res {
				t.Fatalf("Parse(p[:Len]) = %+v, %v, want %+v", head, err, res)
			}
			if res.Len > 0 {
				if _, err := Parse(p[:res.Len-1]); !errors.Is(err, ErrNeedMore) {
					t.Fatalf("Parse(p[:Len-1]) error = %v, want ErrNeedMore", err)
				}
			}
		}
	})
}
