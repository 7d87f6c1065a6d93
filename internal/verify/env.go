package verify

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// env is what every probe of one run shares: where sockets are created,
// the node's resolver and the per-probe timeout. It is read-only once Run
// has built it.
type env struct {
	ns      *netns // nil: the caller's namespace
	res     resolver
	timeout time.Duration
}

// do runs f with every socket it creates in the probed namespace: inline
// when there is none, else on a fresh goroutine locked into it (never
// unlocked, so that thread dies with the goroutine).
func (e *env) do(f func() error) error {
	if e.ns == nil {
		return f()
	}
	done := make(chan error, 1)
	go func() {
		if err := e.ns.enter(); err != nil {
			done <- err
			return
		}
		done <- f()
	}()
	return <-done
}

// dial connects from the probed namespace. A name in addr is resolved
// through the node's resolver, never the machine's.
func (e *env) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		ip, err := e.lookup(ctx, host)
		if err != nil {
			return nil, err
		}
		addr = net.JoinHostPort(ip.String(), port)
	}
	var c net.Conn
	err = e.do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}
