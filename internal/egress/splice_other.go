//go:build !linux

package egress

import (
	"io"
	"net"
)

func copyTCP(dst, src *net.TCPConn) (int64, error) { return io.Copy(dst, src) }
