package egress

import (
	"context"
	"net"
	"syscall"
	"time"
)

// acceptKeepAlive is the keepalive of accepted client connections: Go's
// listener default (15 s idle, 15 s between probes, 9 probes).
var acceptKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 15 * time.Second, Count: 9}

// listenTCP listens on addr with acceptKeepAlive set once on the listening
// socket: Linux copies SO_KEEPALIVE and the TCP keepalive timers to every
// accepted socket, so accepting skips the four setsockopt calls Go's
// listener makes per connection (a measurable share of a short tunnel's
// cost). Elsewhere the options are set per connection as before.
func listenTCP(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAliveConfig: acceptKeepAlive}
	if inheritsKeepAlive {
		lc.KeepAlive = -1 // not per connection: inherited from the listener
		lc.KeepAliveConfig = net.KeepAliveConfig{}
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = setKeepAlive(int(fd), acceptKeepAlive) })
			if err != nil {
				return err
			}
			return serr
		}
	}
	return lc.Listen(ctx, "tcp", addr)
}
