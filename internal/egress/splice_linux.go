//go:build linux

package egress

import (
	"io"
	"net"

	"golang.org/x/sys/unix"
)

// copyTCP copies src to dst until EOF like io.Copy, but splices only
// while bytes are waiting: it parks on src's readiness (no pipe held), asks
// the kernel how many bytes are queued (SIOCINQ), and splices exactly that
// many, so the splice never blocks holding a pipe pair. An idle tunnel thus
// costs its two sockets and nothing else (io.Copy's splice path keeps a
// pipe pair — two more descriptors each way — for the life of the copy).
func copyTCP(dst, src *net.TCPConn) (int64, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return io.Copy(dst, src)
	}
	var total int64
	var peek [1]byte
	for {
		var avail int
		var eof bool
		var serr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, rerr := unix.Recvfrom(int(fd), peek[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			switch {
			case rerr == unix.EAGAIN:
				return false // nothing yet: wait for readiness
			case rerr != nil:
				serr = rerr
			case n == 0:
				eof = true
			default:
				avail, serr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
			}
			return true
		})
		switch {
		case err != nil:
			return total, err
		case serr != nil:
			return total, serr
		case eof:
			return total, nil
		}
		n, err := dst.ReadFrom(&io.LimitedReader{R: src, N: int64(max(avail, 1))})
		total += n
		if err != nil {
			return total, err
		}
	}
}
