//go:build !linux

package dnsserver

import "net"

// enablePktinfo is Linux-only; elsewhere answers leave from the address
// the kernel picks.
func enablePktinfo(*net.UDPConn) error { return nil }

func replyOOB([]byte) []byte { return nil }

// run reads the socket until it is closed.
func (f *udpFront) run() { f.runSimple() }
