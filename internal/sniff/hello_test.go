package sniff

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// realHello runs a crypto/tls client handshake into a net.Pipe and returns
// the first TLS record it wrote: Go sends its ClientHello as one record.
func realHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(client, cfg).Handshake() // fails once the server side closes
		client.Close()
	}()
	defer func() { server.Close(); <-done }()
	if err := server.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, recordHeaderLen)
	if _, err := io.ReadFull(server, hdr); err != nil {
		t.Fatalf("reading the ClientHello record header: %v", err)
	}
	rec := make([]byte, recordHeaderLen+int(binary.BigEndian.Uint16(hdr[3:])))
	copy(rec, hdr)
	if _, err := io.ReadFull(server, rec[recordHeaderLen:]); err != nil {
		t.Fatalf("reading the ClientHello record: %v", err)
	}
	return rec
}

// echConfigList builds an ECHConfigList (draft-ietf-tls-esni, version
// 0xfe0d) for a fresh X25519 key, HKDF-SHA256 and AES-128-GCM, with the
// given public name. The client only needs the public key; nobody decrypts.
func echConfigList(t testing.TB, publicName string) []byte {
	t.Helper()
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.PublicKey().Bytes()
	var c []byte
	c = append(c, 7)      // config_id
	c = be16(c, 0x0020)   // kem_id: DHKEM(X25519, HKDF-SHA256)
	c = be16(c, len(pub)) // public_key
	c = append(c, pub...) //
	c = be16(c, 4)        // cipher_suites
	c = be16(c, 0x0001)   // kdf_id: HKDF-SHA256
	c = be16(c, 0x0001)   // aead_id: AES-128-GCM
	c = append(c, 64)     // maximum_name_length
	c = append(c, byte(len(publicName)))
	c = append(c, publicName...)
	c = be16(c, 0) // extensions
	cfg := be16(be16(nil, 0xfe0d), len(c))
	cfg = append(cfg, c...)
	return append(be16(nil, len(cfg)), cfg...)
}

func be16(b []byte, v int) []byte { return append(b, byte(v>>8), byte(v)) }
func be24(b []byte, v int) []byte { return append(b, byte(v>>16), byte(v>>8), byte(v)) }

// helloBody builds a minimal ClientHello body; exts == nil omits the
// extensions block entirely (a TLS 1.0-style hello).
func helloBody(exts []byte) []byte {
	b := be16(nil, 0x0303)
	b = append(b, make([]byte, 32)...) // random
	b = append(b, 0)                   // session id
	b = be16(b, 2)
	b = be16(b, 0x1301) // one cipher suite
	b = append(b, 1, 0) // compression: null
	if exts != nil {
		b = be16(b, len(exts))
		b = append(b, exts...)
	}
	return b
}

func handshakeMsg(typ byte, body []byte) []byte {
	return append(be24([]byte{typ}, len(body)), body...)
}

func ext(typ int, data []byte) []byte {
	return append(be16(be16(nil, typ), len(data)), data...)
}

// sniData builds server_name extension data with host_name entries.
func sniData(names ...string) []byte {
	var list []byte
	for _, n := range names {
		list = append(list, sniHostName)
		list = be16(list, len(n))
		list = append(list, n...)
	}
	return append(be16(nil, len(list)), list...)
}

// records splits a handshake message into handshake records whose payloads
// have the given sizes; the last record takes the rest.
func records(msg []byte, sizes ...int) []byte {
	var out []byte
	version := 0x0301
	for len(msg) > 0 {
		n := len(msg)
		if len(sizes) > 0 {
			n = min(sizes[0], len(msg))
			sizes = sizes[1:]
		}
		out = append(out, recordTypeHandshake)
		out = be16(out, version)
		out = be16(out, n)
		out = append(out, msg[:n]...)
		msg = msg[n:]
		version = 0x0303
	}
	return out
}

// refragment takes one real ClientHello record and splits its handshake
// message over records of the given sizes.
func refragment(rec []byte, sizes ...int) []byte {
	return records(rec[recordHeaderLen:], sizes...)
}
