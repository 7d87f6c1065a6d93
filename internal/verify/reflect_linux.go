//go:build linux

package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// reflectRate and reflectBurst bound the reflections sent per second, so
// a reflector on the internet is no use as an amplifier: each reflection
// is no larger than the probe, and at most this many go out.
const (
	reflectRate  = 50
	reflectBurst = 50
)

// ReflectICMPv6 is the far side of the ICMPv6 probes (`airlock verify
// --reflect-icmpv6`, on the host that holds verify.targets.offLinkIPv6):
// it opens a Reflector in the caller's network namespace and serves it
// until ctx ends. It needs root (CAP_NET_RAW).
func ReflectICMPv6(ctx context.Context, log *slog.Logger) error {
	r, err := OpenReflector()
	if err != nil {
		return err
	}
	return r.Serve(ctx, log)
}

// Reflector reads every ICMPv6 message its network namespace receives,
// logs each probe (the far side's own record, which shows a probe that
// arrived even when its reflection cannot come back) and sends each probe
// of a reflectable type back to its sender, same type, hop limit 255.
// Once OpenReflector returns, every later probe is seen: a caller that
// must not lose the first probes opens it before they are sent.
type Reflector struct{ fd int }

// OpenReflector opens the reflector's raw socket in the calling thread's
// network namespace.
func OpenReflector() (*Reflector, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
	if err != nil {
		return nil, fmt.Errorf("opening a raw ICMPv6 socket (needs root or CAP_NET_RAW): %w", err)
	}
	if err := setupReflector(fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &Reflector{fd: fd}, nil
}

func setupReflector(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255); err != nil {
		return fmt.Errorf("setting hop limit 255: %w", err)
	}
	// The reflection goes out from the address the probe was sent to (the
	// target), not from whatever source the routing table would pick.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
		return fmt.Errorf("asking for each message's destination: %w", err)
	}
	// A short receive timeout lets the loop see ctx end.
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("setting the receive timeout: %w", err)
	}
	return nil
}

// Serve reflects probes until ctx ends, then closes the socket.
func (r *Reflector) Serve(ctx context.Context, log *slog.Logger) error {
	fd := r.fd
	defer unix.Close(fd)
	log.Info("verify reflector: answering airlock verify's ICMPv6 probes")
	lim := limiter{rate: reflectRate, burst: reflectBurst}
	buf := make([]byte, 2048)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	for ctx.Err() == nil {
		n, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, 0)
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("reading ICMPv6: %w", err)
		}
		sa, ok := from.(*unix.SockaddrInet6)
		if !ok {
			continue
		}
		p, ok := parseICMPv6(buf[:n])
		if !ok || p.flag != flagProbe {
			continue
		}
		src := netip.AddrFrom16(sa.Addr).WithZone(zoneName(sa.ZoneId))
		out, ok := reflection(buf[:n])
		switch {
		case !ok:
			log.Info("verify reflector: probe received", "from", src.String(), "icmpv6_type", int(p.typ), "bytes", n, "reflected", false)
		case !lim.allow(time.Now()):
			log.Warn("verify reflector: probe received, not reflected (rate limit)", "from", src.String(), "icmpv6_type", int(p.typ), "bytes", n)
		default:
			err := unix.Sendmsg(fd, out, replyFrom(oob[:oobn]), sa, 0)
			log.Info("verify reflector: probe received", "from", src.String(), "icmpv6_type", int(p.typ), "bytes", n, "reflected", err == nil, "error", errString(err))
		}
	}
	return nil
}

// replyFrom returns the control message that sends a reflection from the
// destination address of the probe (nil when it is unknown).
func replyFrom(oob []byte) []byte {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo {
			var info unix.Inet6Pktinfo
			copy(info.Addr[:], m.Data[:16])
			return unix.PktInfo6(&info) // interface 0: the routing table picks it
		}
	}
	return nil
}

func zoneName(id uint32) string {
	if id == 0 {
		return ""
	}
	return fmt.Sprint(id)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
