//go:build linux

package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// runEpollRelay is the event-loop floor of a CONNECT relay, the shape of
// haproxy's: one OS thread, one level-triggered epoll set, non-blocking
// sockets, no goroutine per connection and no Go network poller. With
// connect it reads a head up to its end (headEnd; not parsed: its target is
// ignored and to is dialled), dials without blocking, answers 200 once
// connected, then copies both ways with read/write through one buffer,
// half-closing on EOF. It answers how much of airlock's cost per tunnel
// above haproxy's is Go's goroutine-and-netpoller model rather than Go.
func runEpollRelay(listenAddr, to string, connect bool) error {
	dst, err := netip.ParseAddrPort(to)
	if err != nil || !dst.Addr().Is4() {
		return fmt.Errorf("-to %q: want an IPv4 address:port", to)
	}
	lap, err := netip.ParseAddrPort(listenAddr)
	if err != nil || !lap.Addr().Is4() {
		return fmt.Errorf("-listen %q: want an IPv4 address:port", listenAddr)
	}
	runtime.LockOSThread()
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(lfd, &syscall.SockaddrInet4{Port: int(lap.Port()), Addr: lap.Addr().As4()}); err != nil {
		return err
	}
	if err := syscall.Listen(lfd, 4096); err != nil {
		return err
	}
	sa, err := syscall.Getsockname(lfd)
	if err != nil {
		return err
	}
	a := sa.(*syscall.SockaddrInet4)
	fmt.Println(netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)))

	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	// A signal closes the listener through a pipe in the set: the loop
	// ends on it.
	var stop [2]int
	if err := syscall.Pipe2(stop[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		syscall.Write(stop[1], []byte{0})
	}()
	l := &eloop{ep: ep, dst: &syscall.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}, connect: connect}
	if err := l.ctl(syscall.EPOLL_CTL_ADD, lfd, syscall.EPOLLIN); err != nil {
		return err
	}
	if err := l.ctl(syscall.EPOLL_CTL_ADD, stop[0], syscall.EPOLLIN); err != nil {
		return err
	}
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(ep, events, -1)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			switch fd := int(ev.Fd); fd {
			case stop[0]:
				return nil
			case lfd:
				l.accept(lfd)
			default:
				if c := l.conn(fd); c != nil {
					l.event(c, ev.Events)
				}
			}
		}
	}
}

const (
	stHead = iota
	stDial
	stRelay
)

type econn struct {
	fd, state int
	peer      *econn
	head      []byte
	eof       bool // this side sent EOF (read 0)
}

type eloop struct {
	ep      int
	dst     *syscall.SockaddrInet4
	connect bool
	conns   []*econn // by descriptor
	buf     [16 << 10]byte
}

func (l *eloop) ctl(op, fd int, events uint32) error {
	return syscall.EpollCtl(l.ep, op, fd, &syscall.EpollEvent{Events: events, Fd: int32(fd)})
}

func (l *eloop) conn(fd int) *econn {
	if fd < len(l.conns) {
		return l.conns[fd]
	}
	return nil
}

func (l *eloop) put(c *econn) {
	for c.fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*econn, len(l.conns)+64)...)
	}
	l.conns[c.fd] = c
}

func (l *eloop) accept(lfd int) {
	for {
		fd, _, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or an error a next accept may not have
		}
		c := &econn{fd: fd}
		l.put(c)
		if l.connect {
			c.state = stHead
			l.ctl(syscall.EPOLL_CTL_ADD, fd, syscall.EPOLLIN)
			continue
		}
		l.ctl(syscall.EPOLL_CTL_ADD, fd, 0)
		l.dial(c)
	}
}

// dial starts a non-blocking connect to the destination for client c.
func (l *eloop) dial(c *econn) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		l.close(c)
		return
	}
	u := &econn{fd: fd, state: stDial, peer: c}
	c.peer, c.state = u, stDial
	l.put(u)
	if err := syscall.Connect(fd, l.dst); err != nil && err != syscall.EINPROGRESS {
		l.close(c)
		return
	}
	l.ctl(syscall.EPOLL_CTL_ADD, fd, syscall.EPOLLOUT)
}

func (l *eloop) event(c *econn, ev uint32) {
	switch c.state {
	case stHead:
		n, err := syscall.Read(c.fd, l.buf[:])
		if err == syscall.EAGAIN {
			return
		}
		if n <= 0 || len(c.head)+n > 16<<10 {
			l.close(c)
			return
		}
		c.head = append(c.head, l.buf[:n]...)
		if headEnd(c.head) < 0 {
			return
		}
		c.head = nil
		l.ctl(syscall.EPOLL_CTL_MOD, c.fd, 0)
		l.dial(c)
	case stDial:
		if ev&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) == 0 {
			return
		}
		if e, err := syscall.GetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_ERROR); err != nil || e != 0 {
			l.close(c)
			return
		}
		cl := c.peer
		if l.connect {
			if _, err := syscall.Write(cl.fd, connectEstablished); err != nil {
				l.close(c)
				return
			}
		}
		c.state, cl.state = stRelay, stRelay
		l.ctl(syscall.EPOLL_CTL_MOD, c.fd, syscall.EPOLLIN)
		l.ctl(syscall.EPOLL_CTL_MOD, cl.fd, syscall.EPOLLIN)
	case stRelay:
		n, err := syscall.Read(c.fd, l.buf[:])
		if err == syscall.EAGAIN {
			return
		}
		if err != nil {
			l.close(c)
			return
		}
		if n == 0 {
			c.eof = true
			syscall.Shutdown(c.peer.fd, syscall.SHUT_WR)
			if c.peer.eof {
				l.close(c)
				return
			}
			l.ctl(syscall.EPOLL_CTL_MOD, c.fd, 0)
			return
		}
		// A floor for small echoes: a partial write would need the peer's
		// EPOLLOUT and a pending buffer; it closes the tunnel instead.
		if w, err := syscall.Write(c.peer.fd, l.buf[:n]); err != nil || w != n {
			l.close(c)
		}
	}
}

// close closes c and its peer.
func (l *eloop) close(c *econn) {
	for _, x := range []*econn{c, c.peer} {
		if x != nil && l.conns[x.fd] == x {
			l.conns[x.fd] = nil
			syscall.Close(x.fd)
		}
	}
}
