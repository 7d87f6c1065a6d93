//go:build !linux

package egress

import (
	"context"
	"errors"
	"net"
)

var errNoLoops = errors.New("the event-loop engine needs Linux")

// loop is the event-loop engine's loop, on Linux only.
type loop struct{}

func (*loop) stopAccepting() {}
func (*loop) closeAll() int  { return 0 }

func (s *Server) serveProxyLoops(context.Context, net.Listener) error { return errNoLoops }

type jobWorkers struct{}

func (*jobWorkers) stop() {}
