//go:build !linux

package egress

import (
	"errors"
	"io"
	"net"
)

func copyTCP(dst, src *net.TCPConn) (int64, error) { return io.Copy(dst, src) }

// poller exists on Linux only; elsewhere every tunnel has two goroutines.
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("no tunnel poller on this system") }

func (*poller) kickAll() {}
func (*poller) close()   {}

// startRelay relays between client and upstream on two goroutines and
// returns at once; done runs after both connections are closed.
func (s *Server) startRelay(client, upstream *net.TCPConn, done func(up, down int64)) {
	go func() { done(relay(client, upstream)) }()
}
