//go:build linux

package relay

import (
	"io"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// bufSize is the buffer a stream reads into; a read that fills it
// switches the stream to splicing (bulk transfer).
const bufSize = 16 << 10

// stream is one direction's copy state: bytes go from src to dst.
type stream struct {
	src, dst *net.TCPConn
	srcRC    syscall.RawConn
	n        int64 // bytes copied
	bulk     bool  // splice from now on
}

// result says how a copy step ended.
type result int

const (
	moved   result = iota // bytes moved and the source may hold more (a full read, or a splice)
	emptied               // bytes moved by a short read: the source's queue is empty
	again                 // nothing was queued (only without wait)
	eof                   // the source reached EOF
)

// step is the one copy step, used by a tunnel direction's hot phase
// (wait: block in Go's network poller until the source is readable), by
// the poller's drain (no wait: a source with nothing queued returns
// again) and by copyTCP. A bulk stream splices exactly the bytes queued
// (SIOCINQ), so the splice never blocks holding a pipe pair; otherwise
// the step reads what is queued into a buffer lent by bufs and writes it
// on, and a read that fills the buffer makes the stream bulk. The result
// means nothing when the error is not nil.
func (s *stream) step(bufs *sync.Pool, wait bool) (result, error) {
	if s.bulk {
		var avail int
		var end, empty bool
		var serr error
		err := onFD(s.srcRC, wait, func(fd int) bool {
			avail, end, empty, serr = queuedFD(fd)
			return empty
		})
		if err == nil {
			err = serr
		}
		switch {
		case err != nil:
			return moved, err
		case end:
			return eof, nil
		case empty:
			return again, nil
		}
		n, err := s.dst.ReadFrom(&io.LimitedReader{R: s.src, N: int64(avail)})
		s.n += n
		return moved, err
	}
	var bp *[]byte
	var n int
	var rerr error
	err := onFD(s.srcRC, wait, func(fd int) bool {
		bp = bufs.Get().(*[]byte)
		n, rerr = readFD(fd, *bp)
		if rerr == unix.EAGAIN {
			bufs.Put(bp) // lent only while bytes are in it
			bp = nil
			return true
		}
		return false
	})
	if bp == nil {
		return again, err
	}
	defer bufs.Put(bp)
	switch {
	case err != nil:
		return moved, err
	case rerr != nil:
		return moved, rerr
	case n == 0:
		return eof, nil
	}
	w, err := s.dst.Write((*bp)[:n])
	s.n += int64(w)
	if n < len(*bp) {
		return emptied, err
	}
	s.bulk = true
	return moved, err
}

// onFD runs f on the socket's descriptor. With wait it runs in rc.Read,
// which parks in Go's network poller while f reports empty (again) and
// runs f again when the socket is readable; without, f runs once.
func onFD(rc syscall.RawConn, wait bool, f func(fd int) (empty bool)) error {
	if wait {
		return rc.Read(func(fd uintptr) bool { return !f(int(fd)) })
	}
	return rc.Control(func(fd uintptr) { f(int(fd)) })
}

// queuedFD peeks at a socket: the bytes queued (at least one), EOF, or
// empty (a read would block).
func queuedFD(fd int) (avail int, eof, empty bool, err error) {
	var peek [1]byte
	n, _, rerr := unix.Recvfrom(fd, peek[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	switch {
	case rerr == unix.EAGAIN:
		return 0, false, true, nil
	case rerr != nil:
		return 0, false, false, rerr
	case n == 0:
		return 0, true, false, nil
	}
	avail, err = unix.IoctlGetInt(fd, unix.SIOCINQ)
	return max(avail, n), false, false, err
}

func readFD(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// copyTCP copies src to dst until EOF like io.Copy, but as a bulk stream:
// it parks on src's readiness (no pipe held) and splices exactly the
// bytes queued, so an idle copy costs its two sockets and nothing else
// (io.Copy's splice path keeps a pipe pair — two more descriptors each
// way — for the life of the copy).
func copyTCP(dst, src *net.TCPConn) (int64, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return io.Copy(dst, src)
	}
	s := stream{src: src, dst: dst, srcRC: rc, bulk: true}
	for {
		res, err := s.step(nil, true)
		if err != nil || res == eof {
			return s.n, err
		}
	}
}
