package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
)

// runRelay is the Go floor of a relay: accept, (with -connect: read a
// CONNECT head with http.ReadRequest and answer 200), dial -to, copy both
// ways with io.Copy (spliced), close. No policy, no record, no metrics: it
// shows what the Go runtime and the kernel cost per tunnel, the part of
// airlock's cost that haproxy's event loop does not pay.
// connectEstablished is the relays' answer to a CONNECT head.
var connectEstablished = []byte("HTTP/1.1 200 Connection Established\r\n\r\n")

func runRelay(args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	addr := fs.String("listen", "127.0.0.1:0", "listen address")
	to := fs.String("to", "", "address every connection is relayed to")
	connect := fs.Bool("connect", false, "expect a CONNECT head first (its target is ignored; -to is dialled)")
	engine := fs.String("engine", "go", "go: a goroutine per connection and direction; epoll: one thread, one epoll set (epoll_linux.go)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch *engine {
	case "go":
	case "epoll":
		return runEpollRelay(*addr, *to, *connect)
	default:
		return fmt.Errorf("-engine %q: want go or epoll", *engine)
	}
	ln, err := listen(*addr)
	if err != nil {
		return err
	}
	return serve(ln, func(c *net.TCPConn) {
		defer c.Close()
		if *connect {
			br := bufio.NewReaderSize(c, 1024)
			if _, err := http.ReadRequest(br); err != nil || br.Buffered() > 0 {
				return
			}
		}
		u, err := net.Dial("tcp", *to)
		if err != nil {
			return
		}
		defer u.Close()
		if *connect {
			if _, err := c.Write(connectEstablished); err != nil {
				return
			}
		}
		up := u.(*net.TCPConn)
		var wg sync.WaitGroup
		wg.Go(func() {
			io.Copy(up, c)
			up.CloseWrite()
		})
		io.Copy(c, up)
		c.CloseWrite()
		wg.Wait()
	})
}
