//go:build linux

package egress

import (
	"net"
	"syscall"
)

const inheritsKeepAlive = true

// setKeepAlive sets SO_KEEPALIVE and the TCP keepalive timers on fd.
func setKeepAlive(fd int, ka net.KeepAliveConfig) error {
	for _, o := range []struct{ level, opt, v int }{
		{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(ka.Idle.Seconds())},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(ka.Interval.Seconds())},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, ka.Count},
	} {
		if err := syscall.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			return err
		}
	}
	return nil
}
