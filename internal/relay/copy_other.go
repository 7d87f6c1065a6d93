//go:build !linux

package relay

import (
	"errors"
	"io"
	"net"
)

// copyTCP copies src to dst until EOF.
func copyTCP(dst, src *net.TCPConn) (int64, error) { return io.Copy(dst, src) }

// poller exists on Linux only; elsewhere every tunnel has two goroutines.
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("no tunnel poller on this system") }

func (*poller) start(client, upstream *net.TCPConn, done func(Stats)) {
	go func() { done(pair(client, upstream)) }()
}

func (*poller) kickAll() {}
func (*poller) close()   {}
