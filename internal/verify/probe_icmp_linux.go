//go:build linux

package verify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// icmpPayload marks the probe's echo requests.
var icmpPayload = []byte("airlock-verify-icmp")

// icmpEcho sends one ICMP echo request to host and waits for the reply,
// with an unprivileged ping socket when net.ipv4.ping_group_range allows
// it, else a raw socket (root or CAP_NET_RAW). An echo reply is a leak.
func (b *battery) icmpEcho(ctx context.Context, host string) (Outcome, string) {
	dst, err := netip.ParseAddr(host)
	if err != nil || !dst.Unmap().Is4() {
		return NotTested, fmt.Sprintf("ICMP probes IPv4 deniedAddress; %q is not IPv4", host)
	}
	dst = dst.Unmap()
	var (
		got Outcome
		ev  string
	)
	err = b.e.do(func() error {
		got, ev = icmpExchange(ctx, dst, b.e.timeout)
		return nil
	})
	if err != nil {
		return NotTested, err.Error()
	}
	return got, ev
}

func icmpExchange(ctx context.Context, dst netip.Addr, timeout time.Duration) (Outcome, string) {
	raw := false
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		if err != nil {
			return NotTested, fmt.Sprintf("no ICMP socket: needs root (CAP_NET_RAW) or net.ipv4.ping_group_range covering group %d (%v)", os.Getgid(), err)
		}
		raw = true
	}
	defer unix.Close(fd)
	// A random identifier: a conntrack entry left by an earlier echo with
	// the same one would let this request pass as "established".
	var idb [2]byte
	rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	pkt := echoRequest(id, 1, icmpPayload)
	start := time.Now()
	if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: dst.As4()}); err != nil {
		return classifyErr(err, timeout)
	}
	return recvUntil(ctx, fd, start, timeout, 1500, fmt.Sprintf("no echo reply within %s", timeout),
		func(from unix.Sockaddr, msg []byte) (Outcome, string, bool) {
			sa, ok := from.(*unix.SockaddrInet4)
			if !ok || netip.AddrFrom4(sa.Addr) != dst {
				return "", "", false
			}
			if raw {
				if msg, ok = stripIPv4(msg); !ok {
					return "", "", false
				}
			}
			if !isEchoReply(msg, id, raw) {
				return "", "", false
			}
			return Leak, fmt.Sprintf("echo reply from %s in %s", dst, time.Since(start).Round(time.Millisecond)), true
		})
}

// recvUntil reads datagrams from fd until match accepts one (its outcome
// is the probe's) or the context's deadline (else start+timeout) passes:
// then the probe is Blocked with evidence silence.
func recvUntil(ctx context.Context, fd int, start time.Time, timeout time.Duration, size int, silence string, match func(from unix.Sockaddr, msg []byte) (Outcome, string, bool)) (Outcome, string) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = start.Add(timeout)
	}
	buf := make([]byte, size)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return Blocked, silence
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return NotTested, fmt.Sprintf("setting the receive timeout: %v", err)
		}
		n, from, err := unix.Recvfrom(fd, buf, 0)
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return classifyErr(err, timeout)
		}
		if out, ev, ok := match(from, buf[:n]); ok {
			return out, ev
		}
	}
}

// echoRequest builds an ICMP echo request with its checksum (a ping
// socket overwrites the identifier and checksum itself).
func echoRequest(id, seq uint16, payload []byte) []byte {
	p := make([]byte, 8+len(payload))
	p[0] = 8 // echo request
	binary.BigEndian.PutUint16(p[4:6], id)
	binary.BigEndian.PutUint16(p[6:8], seq)
	copy(p[8:], payload)
	binary.BigEndian.PutUint16(p[2:4], checksum(p))
	return p
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// stripIPv4 returns the payload of an IPv4 packet (raw sockets deliver
// the header).
func stripIPv4(p []byte) ([]byte, bool) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return nil, false
	}
	hl := int(p[0]&0x0f) * 4
	if hl < 20 || len(p) < hl {
		return nil, false
	}
	return p[hl:], true
}

// isEchoReply reports whether msg is the reply to our request. A ping
// socket's kernel matches the identifier; on a raw socket, check it.
func isEchoReply(msg []byte, id uint16, checkID bool) bool {
	if len(msg) < 8 || msg[0] != 0 || msg[1] != 0 {
		return false
	}
	if checkID && binary.BigEndian.Uint16(msg[4:6]) != id {
		return false
	}
	return bytes.Equal(msg[8:], icmpPayload)
}
