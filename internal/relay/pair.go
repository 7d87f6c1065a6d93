package relay

import (
	"errors"
	"io"
	"net"
	"sync"
)

// errClosed is the poller error after Engine.Close.
var errClosed = errors.New("the relay engine is closed")

// keyError is the log key of an error's text.
const keyError = "error"

// pair copies bytes both ways between client and upstream on two
// goroutines until both directions end. It is the relay where there is no
// poller (not Linux, epoll failed, or the Engine closed). Both sides are
// *net.TCPConn, so copyTCP splices on Linux and the bytes never enter user
// space.
//
// A direction that reaches EOF half-closes the other side (CloseWrite), so
// a client that finishes sending still gets the whole answer. A direction
// that fails (reset, closed by a shutdown) closes both connections, which
// ends the other direction too. pair closes both connections before it
// returns.
func pair(client, upstream *net.TCPConn) Stats {
	var wg sync.WaitGroup
	var once sync.Once
	abort := func() {
		once.Do(func() {
			client.Close()
			upstream.Close()
		})
	}
	var st Stats
	wg.Add(1)
	go func() {
		defer wg.Done()
		var err error
		st.Up, err = copyTCP(upstream, client)
		endDirection(upstream, err, abort)
	}()
	var err error
	st.Down, err = copyTCP(client, upstream)
	endDirection(client, err, abort)
	wg.Wait()
	abort()
	return st
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
