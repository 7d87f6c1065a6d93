//go:build linux

package verify

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// icmpv6OffLink sends one message of kind k, hop limit 255 (what neighbour
// discovery demands) and a payload, to the off-link target over a raw
// socket, and waits for the far side's answer: the reflector's copy of it
// (same type, same nonce) or, for an echo request, an echo reply. Either
// is a leak: the message left the node and the answer came back. EPERM
// (the local firewall) and silence are blocked.
func (b *battery) icmpv6OffLink(ctx context.Context, k icmpv6Kind) (Outcome, string) {
	dst, err := netip.ParseAddr(b.t.OffLinkIPv6)
	if err != nil || !dst.Is6() || dst.Is4In6() {
		return NotTested, fmt.Sprintf("offLinkIPv6 %q is not an IPv6 address", b.t.OffLinkIPv6)
	}
	var (
		got Outcome
		ev  string
	)
	err = b.e.do(func() error {
		got, ev = icmpv6Exchange(ctx, dst, k, b.e.timeout)
		return nil
	})
	if err != nil {
		return NotTested, err.Error()
	}
	return got, ev
}

func icmpv6Exchange(ctx context.Context, dst netip.Addr, k icmpv6Kind, timeout time.Duration) (Outcome, string) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
	if err != nil {
		return NotTested, fmt.Sprintf("no raw ICMPv6 socket: needs root (CAP_NET_RAW) (%v)", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255); err != nil {
		return NotTested, fmt.Sprintf("setting hop limit 255: %v", err)
	}
	var nb [icmpv6NonceLen / 2]byte
	rand.Read(nb[:])
	nonce := hex.EncodeToString(nb[:])
	// A random identifier: a conntrack entry left by an earlier echo with
	// the same one would let this request pass as "established".
	id := binary.BigEndian.Uint16(nb[:2])
	msg := icmpv6Message(k.typ, dst, id, nonce, flagProbe)
	start := time.Now()
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrInet6{Addr: dst.As16()}); err != nil {
		return classifyErr(err, timeout)
	}
	silence := fmt.Sprintf("no answer to the %s (%d bytes of payload, hop limit 255) within %s", k.what, len(msg)-4, timeout)
	return recvUntil(ctx, fd, start, timeout, 2048, silence, func(from unix.Sockaddr, b []byte) (Outcome, string, bool) {
		sa, ok := from.(*unix.SockaddrInet6)
		if !ok || netip.AddrFrom16(sa.Addr) != dst {
			return "", "", false
		}
		p, ok := parseICMPv6(b)
		if !ok || p.nonce != nonce {
			return "", "", false
		}
		took := time.Since(start).Round(time.Millisecond)
		switch {
		case k.typ == icmpv6EchoRequest && p.typ == icmpv6EchoReply:
			return Leak, fmt.Sprintf("echo reply from %s in %s", dst, took), true
		case p.typ == k.typ && p.flag == flagReflection:
			return Leak, fmt.Sprintf("the %s with a payload reached %s and its reflector sent it back (in %s)", k.what, dst, took), true
		}
		return "", "", false
	})
}
