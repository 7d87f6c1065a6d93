package verify

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
)

// quicProbeVersion is a reserved version of the form 0x?a?a?a?a (RFC 9000
// §15) that no server supports: a QUIC server must answer an Initial-sized
// datagram carrying it with a Version Negotiation packet, so the far side
// answers without a real handshake.
const quicProbeVersion = 0x1a2a3a4a

// quicInitialSize is the minimum size of a client Initial datagram.
const quicInitialSize = 1200

// quicProbe builds a long-header Initial-shaped datagram, padded to 1200
// bytes, with a random destination connection ID.
func quicProbe() []byte {
	p := make([]byte, quicInitialSize)
	p[0] = 0xc3 // long header, fixed bit, type Initial, 4-byte packet number
	binary.BigEndian.PutUint32(p[1:5], quicProbeVersion)
	p[5] = 8 // DCID length
	rand.Read(p[6:14])
	p[14] = 0                                           // SCID length
	p[15] = 0                                           // token length (varint 0)
	length := uint16(quicInitialSize - 18)              // packet number and payload
	binary.BigEndian.PutUint16(p[16:18], 0x4000|length) // 2-byte varint
	return p
}

// udp443 sends a QUIC-like Initial to addr over a connected UDP socket.
// Any datagram back (a Version Negotiation packet, an echo) is a leak, and
// so is ICMP port unreachable (ECONNREFUSED): the far side's host
// answered. EPERM from the local firewall and silence are blocked.
func (b *battery) udp443(ctx context.Context, addr string) (Outcome, string) {
	c, err := b.e.dial(ctx, "udp", addr)
	if err != nil {
		return classifyErr(err, b.e.timeout)
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	if _, err := c.Write(quicProbe()); err != nil {
		return classifyErr(err, b.e.timeout)
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return classifyErr(err, b.e.timeout)
	}
	what := "a datagram"
	if n >= 5 && buf[0]&0x80 != 0 && binary.BigEndian.Uint32(buf[1:5]) == 0 {
		what = "a QUIC Version Negotiation packet"
	}
	return Leak, fmt.Sprintf("answered with %s of %d bytes", what, n)
}
