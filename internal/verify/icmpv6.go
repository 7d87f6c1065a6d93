package verify

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"time"
)

// The ICMPv6 probes send messages of several types, neighbour discovery
// among them, with a payload to verify.targets.offLinkIPv6: an address off
// every link of the node. A firewall that accepts a type "because
// neighbour discovery needs it" without confining it to the link lets
// such a message, and the data in it, leave. Neighbour discovery messages
// get no answer from an ordinary host (they arrive with a hop limit below
// 255 and are dropped), so the far side runs a reflector (`airlock verify
// --reflect-icmpv6`) that sends each probe back to its sender with the
// same type; an echo request is answered by the far side's kernel.

// icmpv6Marker starts the payload of every probe and reflection; a nonce
// of icmpv6NonceLen hex digits and a flag follow it.
const (
	icmpv6Marker   = "airlock-verify-icmpv6/"
	icmpv6NonceLen = 16
	flagProbe      = '?'
	flagReflection = '!'
)

// ICMPv6 types the probes use.
const (
	icmpv6EchoRequest  = 128
	icmpv6EchoReply    = 129
	icmpv6RouterSolic  = 133
	icmpv6NeighSolic   = 135
	icmpv6NeighAdvert  = 136
	icmpv6MLDv2Report  = 143
	icmpv6Unassigned   = 199 // 162 to 199 are unassigned (IANA)
	icmpv6FixedDefault = 4
)

// icmpv6Kind is one probed message type.
type icmpv6Kind struct {
	channel string
	typ     uint8
	what    string
}

// icmpv6Kinds are the probed types, in the battery's row order.
var icmpv6Kinds = []icmpv6Kind{
	{"icmpv6-nd-router-solicit", icmpv6RouterSolic, "router solicitation (type 133)"},
	{"icmpv6-nd-neighbor-solicit", icmpv6NeighSolic, "neighbour solicitation (type 135)"},
	{"icmpv6-nd-neighbor-advert", icmpv6NeighAdvert, "neighbour advertisement (type 136)"},
	{"icmpv6-mld-report", icmpv6MLDv2Report, "MLDv2 report (type 143)"},
	{"icmpv6-echo", icmpv6EchoRequest, "echo request (type 128)"},
	{"icmpv6-unassigned", icmpv6Unassigned, "unassigned type 199"},
}

// fixedLen is the length of a type's fixed part after the 4-byte header:
// neighbour solicitations and advertisements carry 4 bytes of flags and a
// 16-byte target address; the others 4 bytes (reserved, identifier and
// sequence, record count).
func fixedLen(typ uint8) int {
	if typ == icmpv6NeighSolic || typ == icmpv6NeighAdvert {
		return 20
	}
	return icmpv6FixedDefault
}

// icmpv6Message builds a probe of type typ to dst: the type's fixed part
// (an NS or NA names dst as its target; an echo request carries id), then
// the marker, the nonce and flag. The checksum is left 0: the kernel fills
// it in for ICMPv6 raw sockets.
func icmpv6Message(typ uint8, dst netip.Addr, id uint16, nonce string, flag byte) []byte {
	fixed := fixedLen(typ)
	m := make([]byte, 4+fixed, 4+fixed+len(icmpv6Marker)+len(nonce)+1)
	m[0] = typ
	switch typ {
	case icmpv6NeighSolic, icmpv6NeighAdvert:
		a := dst.As16()
		copy(m[8:24], a[:])
	case icmpv6EchoRequest:
		binary.BigEndian.PutUint16(m[4:6], id)
		binary.BigEndian.PutUint16(m[6:8], 1)
	}
	m = append(m, icmpv6Marker...)
	m = append(m, nonce...)
	return append(m, flag)
}

// icmpv6Probe is what parseICMPv6 found in a message.
type icmpv6Probe struct {
	typ   uint8
	nonce string
	flag  byte
}

// parseICMPv6 reads an ICMPv6 message (as a raw socket delivers it: no IP
// header) that carries a probe's payload. ok is false for anything else:
// too short, another payload, a bad nonce or flag.
func parseICMPv6(msg []byte) (p icmpv6Probe, ok bool) {
	if len(msg) < 4 {
		return p, false
	}
	typ := msg[0]
	off := 4 + fixedLen(typ)
	if typ == icmpv6EchoReply {
		off = 4 + icmpv6FixedDefault
	}
	rest := msg[min(off, len(msg)):]
	if !bytes.HasPrefix(rest, []byte(icmpv6Marker)) || len(rest) != len(icmpv6Marker)+icmpv6NonceLen+1 {
		return p, false
	}
	nonce := rest[len(icmpv6Marker) : len(icmpv6Marker)+icmpv6NonceLen]
	if _, err := hex.DecodeString(string(nonce)); err != nil {
		return p, false
	}
	flag := rest[len(rest)-1]
	if flag != flagProbe && flag != flagReflection {
		return p, false
	}
	return icmpv6Probe{typ: typ, nonce: string(nonce), flag: flag}, true
}

// reflectable reports whether the reflector answers a probe of this type:
// every probed type but the echo request, which the far side's kernel
// answers itself.
func reflectable(typ uint8) bool {
	for _, k := range icmpv6Kinds {
		if k.typ == typ {
			return typ != icmpv6EchoRequest
		}
	}
	return false
}

// reflection returns the message the reflector sends back for msg: the
// same bytes, flagged as a reflection, checksum cleared. ok is false for
// anything that is not a probe of a reflectable type (reflections
// included, so two reflectors never play ping-pong). The answer is never
// larger than the question.
func reflection(msg []byte) (out []byte, ok bool) {
	p, ok := parseICMPv6(msg)
	if !ok || p.flag != flagProbe || !reflectable(p.typ) {
		return nil, false
	}
	out = bytes.Clone(msg)
	out[2], out[3] = 0, 0
	out[len(out)-1] = flagReflection
	return out, true
}

// limiter is a token bucket: rate tokens a second, at most burst saved.
type limiter struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func (l *limiter) allow(now time.Time) bool {
	if l.last.IsZero() {
		l.tokens = l.burst
	} else {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
