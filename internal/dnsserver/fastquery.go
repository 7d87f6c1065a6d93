package dnsserver

import (
	"encoding/binary"
	"net/netip"

	"github.com/miekg/dns"
)

// Header flag bits of a query that the answer depends on.
const (
	flagQR     = 1 << 15
	flagOpcode = 0xf << 11
	flagRD     = 1 << 8
	flagCD     = 1 << 4
)

// fastKey appends to dst the key under which the fast path keeps the
// answer to the UDP query pkt from src, and reports whether pkt has the
// one shape the fast path replays: a standard query (QR clear, opcode
// QUERY) with one question of at most 255 bytes (no compression pointer)
// and nothing else but, optionally, an OPT record without options, ending
// the packet. Any other packet (false) takes the full path.
//
// The key holds everything the answer depends on besides the ID and the
// time: the client's address (decisions are per client), the RD and CD
// bits (copied into the answer), whether EDNS0 was used and with which
// payload size (the answer's OPT record and truncation), and the question
// exactly as sent (the answer echoes its spelling). Header bits the server
// ignores, and the OPT record's version and flags, are left out.
func fastKey(dst []byte, src netip.Addr, pkt []byte) ([]byte, bool) {
	if len(pkt) < 12+5 {
		return dst, false
	}
	flags := binary.BigEndian.Uint16(pkt[2:])
	qd := binary.BigEndian.Uint16(pkt[4:])
	an := binary.BigEndian.Uint16(pkt[6:])
	ns := binary.BigEndian.Uint16(pkt[8:])
	ar := binary.BigEndian.Uint16(pkt[10:])
	if flags&(flagQR|flagOpcode) != 0 || qd != 1 || an != 0 || ns != 0 || ar > 1 {
		return dst, false
	}
	off := 12
	for {
		if off >= len(pkt) {
			return dst, false
		}
		l := int(pkt[off])
		if l&0xc0 != 0 {
			return dst, false // pointer or reserved label type
		}
		off += 1 + l
		if off-12 > 255 {
			return dst, false
		}
		if l == 0 {
			break
		}
	}
	qend := off + 4
	if qend > len(pkt) {
		return dst, false
	}
	var edns byte
	var size uint16
	switch {
	case ar == 0 && qend == len(pkt):
	case ar == 1 && qend+11 == len(pkt) && pkt[qend] == 0 &&
		binary.BigEndian.Uint16(pkt[qend+1:]) == dns.TypeOPT &&
		binary.BigEndian.Uint16(pkt[qend+9:]) == 0:
		edns = 1
		size = binary.BigEndian.Uint16(pkt[qend+3:])
	default:
		return dst, false
	}
	a := src.Unmap().As16()
	dst = append(dst, a[:]...)
	dst = append(dst, byte(flags>>8)&(flagRD>>8), byte(flags)&flagCD, edns, byte(size>>8), byte(size))
	dst = append(dst, pkt[12:qend]...)
	return dst, true
}

// ttlSlot is where one TTL sits in a packed answer, and the value it counts
// down from: the TTL served is max(0, base − age) for the cache entry's age.
type ttlSlot struct {
	off  int
	base uint32
}

// ttlSlots finds the TTL field of every record of the packed message pkt
// (the OPT record's is not a TTL) and returns them with base = TTL + age.
// ok is false when pkt does not parse.
func ttlSlots(pkt []byte, age uint32) (slots []ttlSlot, ok bool) {
	if len(pkt) < 12 {
		return nil, false
	}
	qd := int(binary.BigEndian.Uint16(pkt[4:]))
	rrs := int(binary.BigEndian.Uint16(pkt[6:])) + int(binary.BigEndian.Uint16(pkt[8:])) + int(binary.BigEndian.Uint16(pkt[10:]))
	off := 12
	for range qd {
		if off, ok = skipName(pkt, off); !ok || off+4 > len(pkt) {
			return nil, false
		}
		off += 4
	}
	for range rrs {
		if off, ok = skipName(pkt, off); !ok || off+10 > len(pkt) {
			return nil, false
		}
		if binary.BigEndian.Uint16(pkt[off:]) != dns.TypeOPT {
			slots = append(slots, ttlSlot{off: off + 4, base: binary.BigEndian.Uint32(pkt[off+4:]) + age})
		}
		off += 10 + int(binary.BigEndian.Uint16(pkt[off+8:]))
		if off > len(pkt) {
			return nil, false
		}
	}
	return slots, off == len(pkt)
}

// skipName returns the offset after the (possibly compressed) name at off.
func skipName(pkt []byte, off int) (int, bool) {
	for {
		if off >= len(pkt) {
			return 0, false
		}
		l := int(pkt[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xc0 == 0xc0:
			return off + 2, off+2 <= len(pkt)
		case l&0xc0 != 0:
			return 0, false
		}
		off += 1 + l
	}
}
