package sniff

import (
	"errors"
	"fmt"
)

// Bounds on what Parse reads before deciding.
const (
	// MaxClientHello bounds the TLS records (headers included) that carry the
	// ClientHello. Real ClientHellos are 0.5–2 KiB, post-quantum key shares
	// included.
	MaxClientHello = 16 << 10
	// MaxHTTPHead bounds the HTTP request line and header fields, through the
	// blank line that ends them.
	MaxHTTPHead = 8 << 10
)

// Errors returned by Parse and ReadHead.
var (
	// ErrNeedMore means the prefix is a valid beginning but too short to
	// decide; call again with more bytes.
	ErrNeedMore = errors.New("sniff: need more bytes")
	// ErrTooLarge means the ClientHello or the HTTP head does not end within
	// its bound.
	ErrTooLarge = errors.New("sniff: client hello or request head too large")
	// ErrMalformed is wrapped by every error about bytes that start like TLS
	// or HTTP but break the protocol.
	ErrMalformed = errors.New("sniff: malformed")
	// ErrSSLv2 means an SSLv2-compatible ClientHello, which has no
	// extensions and so no SNI.
	ErrSSLv2 = errors.New("sniff: SSLv2-compatible client hello refused")
)

// Kind says which protocol the prefix speaks.
type Kind uint8

// Kinds of prefix.
const (
	Unknown Kind = iota // neither a TLS handshake nor an HTTP/1.x request
	TLS
	HTTP
)

// String returns "unknown", "tls" or "http".
func (k Kind) String() string {
	switch k {
	case TLS:
		return "tls"
	case HTTP:
		return "http"
	}
	return "unknown"
}

// Result is what Parse found.
type Result struct {
	Kind Kind
	// Name is the TLS server_name, or the HTTP host: from the absolute-form
	// or authority-form request target when there is one (RFC 9112 §3.2.2),
	// otherwise from the Host header field. Without port; an IPv6 literal
	// loses its brackets. It is returned as sent, not normalized: pass it
	// through dnsname.Parse (or netip.ParseAddr for literals). Empty when
	// the ClientHello has no SNI or the request has no host.
	Name string
	// Port is the port written in the HTTP request target or Host, 0 when
	// none is written (and always 0 for TLS).
	Port uint16
	// Len is the number of prefix bytes the ClientHello records or the
	// request head occupy.
	Len int
	// ECH reports that the ClientHello carries the encrypted_client_hello
	// extension: Name is then the outer, public name.
	ECH bool
	// Method is the HTTP request method ("GET", "CONNECT", …).
	Method string
}

// Parse inspects the first bytes of a connection. It returns:
//   - a Result with Kind TLS or HTTP and a nil error when it found a complete
//     ClientHello or request head (Name may be empty: no SNI, no Host);
//   - a Result with Kind Unknown and a nil error when the bytes are neither;
//   - ErrNeedMore when more bytes could decide;
//   - ErrTooLarge, ErrSSLv2 or an error wrapping ErrMalformed otherwise,
//     with Kind set to the protocol the bytes started as.
//
// Parse never reads beyond MaxClientHello bytes and keeps no reference to
// prefix.
func Parse(prefix []byte) (Result, error) {
	if len(prefix) == 0 {
		return Result{}, ErrNeedMore
	}
	switch c := prefix[0]; {
	case c == recordTypeHandshake:
		return parseTLS(prefix)
	case c&0x80 != 0:
		if isSSLv2Hello(prefix) {
			return Result{Kind: TLS}, ErrSSLv2
		}
		if len(prefix) < 3 {
			return Result{}, ErrNeedMore
		}
		return Result{Kind: Unknown}, nil
	case isTchar(c):
		return parseHTTP(prefix)
	}
	return Result{Kind: Unknown}, nil
}

// isSSLv2Hello recognizes the SSLv2 record header (2-byte length with the
// high bit set) followed by message type 1, CLIENT-HELLO.
func isSSLv2Hello(p []byte) bool {
	return len(p) >= 3 && p[0]&0x80 != 0 && p[2] == 1
}

func malformed(k Kind, format string, args ...any) (Result, error) {
	return Result{Kind: k}, fmt.Errorf("%w %s: %s", ErrMalformed, k, fmt.Sprintf(format, args...))
}
