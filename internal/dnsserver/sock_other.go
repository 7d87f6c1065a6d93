//go:build !linux

package dnsserver

import (
	"net"
	"syscall"
)

// enablePktinfo is Linux-only; elsewhere answers leave from the address
// the kernel picks.
func enablePktinfo(*net.UDPConn) error { return nil }

func replyOOB([]byte) []byte { return nil }

// run reads the socket until it is closed.
func (f *udpFront) run() { f.runSimple() }

// reusePort: without SO_REUSEPORT here, a second socket on the same
// address fails to bind; set dns.readers to 1.
func reusePort(_, _ string, _ syscall.RawConn) error { return nil }
