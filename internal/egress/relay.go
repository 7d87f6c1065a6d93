package egress

import (
	"errors"
	"io"
	"net"
	"sync"
)

// relay copies bytes both ways between client and upstream on two
// goroutines until both directions end, and returns the bytes copied up
// (client to upstream) and down. It is the relay where there is no poller
// (not Linux, or epoll failed); on Linux tunnels go through pumpRelay. Both sides are *net.TCPConn, so copyTCP splices (splice(2) on
// Linux) and the bytes never enter user space; nothing may wrap them.
//
// A direction that reaches EOF half-closes the other side (CloseWrite), so
// a client that finishes sending still gets the whole answer. A direction
// that fails (reset, closed by Shutdown) closes both connections, which
// ends the other direction too. relay closes both connections before it
// returns.
func relay(client, upstream *net.TCPConn) (up, down int64) {
	var wg sync.WaitGroup
	var once sync.Once
	abort := func() {
		once.Do(func() {
			client.Close()
			upstream.Close()
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var err error
		up, err = copyTCP(upstream, client)
		endDirection(upstream, err, abort)
	}()
	var err error
	down, err = copyTCP(client, upstream)
	endDirection(client, err, abort)
	wg.Wait()
	abort()
	return up, down
}

// endDirection half-closes dst after a clean EOF, or aborts both sides
// after an error.
func endDirection(dst *net.TCPConn, err error, abort func()) {
	if err != nil && !errors.Is(err, io.EOF) {
		abort()
		return
	}
	if dst.CloseWrite() != nil {
		abort()
	}
}
