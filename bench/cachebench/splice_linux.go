package main

import (
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
)

// splicePipe moves src to dst through a kernel pipe with splice(2), so the
// bytes never enter this process: per chunk, one splice in (up to
// throttleBuf), the tokens paid, then splices out until the pipe is empty.
// Both sockets stay non-blocking under Go's netpoller (RawConn). ok is
// false when splice cannot be set up (the caller then copies through a
// buffer); done reports whether src reached EOF (true) or failed (false).
func splicePipe(dst, src net.Conn, b *bucket, count *atomic.Int64) (ok, eof bool) {
	sc, ok1 := src.(syscall.Conn)
	dc, ok2 := dst.(syscall.Conn)
	if !ok1 || !ok2 {
		return false, false
	}
	rsc, err1 := sc.SyscallConn()
	rdc, err2 := dc.SyscallConn()
	if err1 != nil || err2 != nil {
		return false, false
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return false, false
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	// A pipe holds 64 KiB by default; ask for a whole chunk (best effort,
	// capped by fs.pipe-max-size).
	_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, uintptr(p[1]), syscall.F_SETPIPE_SZ, throttleBuf)
	const flags = spliceMove | spliceNonblock
	for {
		var n int64
		var serr error
		err := rsc.Read(func(fd uintptr) bool {
			n, serr = syscall.Splice(int(fd), nil, p[1], nil, throttleBuf, flags)
			return serr != syscall.EAGAIN
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return true, false
		}
		if n == 0 {
			return true, true
		}
		b.pay(int(n))
		for left := n; left > 0; {
			var m int64
			err := rdc.Write(func(fd uintptr) bool {
				m, serr = syscall.Splice(p[0], nil, int(fd), nil, int(left), flags)
				return serr != syscall.EAGAIN
			})
			if err == nil {
				err = serr
			}
			if err == nil && m == 0 {
				err = fmt.Errorf("splice to socket: no progress")
			}
			if err != nil {
				return true, false
			}
			left -= m
			count.Add(m)
		}
	}
}

// splice(2) flags (not in package syscall).
const (
	spliceMove     = 0x1
	spliceNonblock = 0x2
)
