package sniff

// TLS wire constants (RFC 8446 §5.1, §4; RFC 6066 §3; the ECH draft).
const (
	recordTypeHandshake    = 0x16
	recordHeaderLen        = 5
	maxRecordPayload       = 1 << 14 // 2^14, RFC 8446 §5.1
	handshakeClientHello   = 1
	handshakeHeaderLen     = 4
	extServerName          = 0x0000
	extEncryptedClientHelo = 0xfe0d
	sniHostName            = 0
)

// parseTLS reassembles the handshake message from consecutive handshake
// records, which may split it anywhere (RFC 8446 §5.1 allows a message to
// span records), and reads the ClientHello in it.
func parseTLS(p []byte) (Result, error) {
	if len(p) >= 2 && p[1] != 3 {
		// 0x16 followed by anything but a TLS major version is not TLS.
		return Result{Kind: Unknown}, nil
	}
	var (
		msg   []byte // the handshake message so far
		owned bool   // msg is a private buffer (more than one record)
		need  = -1   // length of the whole message once its header is known
		off   int
	)
	for need < 0 || len(msg) < need {
		if off+recordHeaderLen > MaxClientHello {
			return Result{Kind: TLS}, ErrTooLarge
		}
		if off+recordHeaderLen > len(p) {
			return Result{Kind: TLS}, ErrNeedMore
		}
		h := p[off : off+recordHeaderLen]
		if h[0] != recordTypeHandshake {
			return malformed(TLS, "record type %d inside the ClientHello, want handshake (22)", h[0])
		}
		if h[1] != 3 {
			return malformed(TLS, "record version %d.%d", h[1], h[2])
		}
		n := int(h[3])<<8 | int(h[4])
		if n == 0 {
			return malformed(TLS, "empty handshake record")
		}
		if n > maxRecordPayload {
			return malformed(TLS, "record of %d bytes, longer than 2^14", n)
		}
		end := off + recordHeaderLen + n
		if end > MaxClientHello {
			return Result{Kind: TLS}, ErrTooLarge
		}
		if end > len(p) {
			return Result{Kind: TLS}, ErrNeedMore
		}
		frag := p[off+recordHeaderLen : end]
		switch {
		case msg == nil:
			msg = frag
		case !owned:
			msg = append(append(make([]byte, 0, len(msg)+len(frag)), msg...), frag...)
			owned = true
		default:
			msg = append(msg, frag...)
		}
		off = end
		if need < 0 && len(msg) >= handshakeHeaderLen {
			if msg[0] != handshakeClientHello {
				return malformed(TLS, "handshake message type %d, want ClientHello (1)", msg[0])
			}
			need = handshakeHeaderLen + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
			if need > MaxClientHello {
				return Result{Kind: TLS}, ErrTooLarge
			}
		}
	}
	res, err := parseClientHello(msg[handshakeHeaderLen:need])
	if err != nil {
		return Result{Kind: TLS}, err
	}
	res.Kind = TLS
	res.Len = off
	return res, nil
}

// parseClientHello reads the body of a ClientHello (RFC 8446 §4.1.2, which
// is a superset of the TLS 1.0–1.2 layout) and returns its SNI.
func parseClientHello(body []byte) (Result, error) {
	var res Result
	c := cursor{b: body}
	if major, _ := c.u8(), c.u8(); major != 3 {
		return malformed(TLS, "client version major %d", major)
	}
	c.skip(32) // random
	if sid := c.vec8(); len(sid) > 32 {
		return malformed(TLS, "session id of %d bytes, longer than 32", len(sid))
	}
	if cs := c.vec16(); !c.bad && (len(cs) < 2 || len(cs)%2 != 0) {
		return malformed(TLS, "cipher suites list of %d bytes", len(cs))
	}
	if cm := c.vec8(); !c.bad && len(cm) < 1 {
		return malformed(TLS, "empty compression methods list")
	}
	if c.bad {
		return malformed(TLS, "truncated client hello")
	}
	if c.empty() {
		return res, nil // no extensions: a TLS 1.0 hello without SNI
	}
	exts := cursor{b: c.vec16()}
	if c.bad || !c.empty() {
		return malformed(TLS, "extensions block does not fill the client hello")
	}
	seenSNI := false
	for !exts.empty() {
		typ := exts.u16()
		data := exts.vec16()
		if exts.bad {
			return malformed(TLS, "truncated extension")
		}
		switch typ {
		case extServerName:
			if seenSNI {
				return malformed(TLS, "two server_name extensions")
			}
			seenSNI = true
			name, err := parseSNI(data)
			if err != nil {
				return res, err
			}
			res.Name = name
		case extEncryptedClientHelo:
			if res.ECH {
				return malformed(TLS, "two encrypted_client_hello extensions")
			}
			res.ECH = true
		}
	}
	return res, nil
}

// parseSNI reads a ServerNameList (RFC 6066 §3) and returns its host_name.
func parseSNI(data []byte) (string, error) {
	c := cursor{b: data}
	list := cursor{b: c.vec16()}
	if c.bad || !c.empty() || list.empty() {
		_, err := malformed(TLS, "server_name extension is not one non-empty name list")
		return "", err
	}
	var host string
	seen := false
	for !list.empty() {
		typ := list.u8()
		name := list.vec16()
		if list.bad {
			_, err := malformed(TLS, "truncated server name")
			return "", err
		}
		if typ != sniHostName {
			continue // RFC 6066 leaves room for other name types; none exist
		}
		if seen {
			_, err := malformed(TLS, "two host_name entries in server_name")
			return "", err
		}
		seen = true
		if len(name) == 0 {
			_, err := malformed(TLS, "empty host_name")
			return "", err
		}
		for _, b := range name {
			if b <= 0x20 || b >= 0x7f {
				_, err := malformed(TLS, "host_name contains byte 0x%02x", b)
				return "", err
			}
		}
		host = string(name)
	}
	return host, nil
}

// cursor reads big-endian integers and length-prefixed vectors; after the
// first out-of-bounds read, bad is set and every read returns zero values.
type cursor struct {
	b   []byte
	bad bool
}

func (c *cursor) empty() bool { return len(c.b) == 0 }

func (c *cursor) take(n int) []byte {
	if c.bad || n > len(c.b) {
		c.bad = true
		c.b = nil
		return nil
	}
	v := c.b[:n]
	c.b = c.b[n:]
	return v
}

func (c *cursor) skip(n int) { c.take(n) }

func (c *cursor) u8() int {
	v := c.take(1)
	if v == nil {
		return 0
	}
	return int(v[0])
}

func (c *cursor) u16() int {
	v := c.take(2)
	if v == nil {
		return 0
	}
	return int(v[0])<<8 | int(v[1])
}

func (c *cursor) vec8() []byte  { return c.take(c.u8()) }
func (c *cursor) vec16() []byte { return c.take(c.u16()) }
