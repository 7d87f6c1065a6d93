//go:build linux

package egress

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pumpRelay is one tunnel: two directions, each copied by a goroutine that
// exists only while the direction is busy.
//
// A direction starts hot: its goroutine waits for bytes in Go's network
// poller, as a plain copy loop would (no extra system call per message).
// After hotIdle without a byte it hands its socket to the poller and its
// goroutine ends; from then on the poller starts a goroutine when the
// source has bytes (or news: EOF, an error) waiting, which copies until
// the socket is drained and ends. Short-lived tunnels never reach the
// poller; idle ones hold no goroutine.
//
// Per direction: read what is queued into a lent buffer and write it on
// (one read and one write for a small message, no pipe); a read that
// fills the buffer marks the direction bulk, and from then on it splices
// exactly the bytes queued (SIOCINQ), so a large transfer stays out of user
// space. EOF half-closes the other side (CloseWrite), so a client that
// finishes sending still gets the whole answer; an error closes both
// connections, which ends the other direction too. When both directions
// have ended, both connections are closed and done runs, once.
type pumpRelay struct {
	p    *poller
	id   uint64
	dirs [2]pumpDir // 0: client to upstream (up), 1: upstream to client (down)
	done func(up, down int64)

	mu      sync.Mutex // guards the flags below and the dirs' flags
	aborted bool
}

type pumpDir struct {
	src, dst *net.TCPConn
	srcRC    syscall.RawConn
	n        int64 // bytes copied; read once both directions ended
	bulk     bool  // splice from now on

	hotUntil time.Time // the read deadline of the hot phase

	pending bool // an event arrived since the direction last drained
	hup     bool // ... and it said the peer hung up (or the socket failed)
	running bool // a goroutine owns the direction (or it ended)
	ended   bool
}

// hotIdle is how long a direction waits for bytes in Go's network poller
// before its socket goes to the poller and its goroutine ends. Short, so
// that tunnels opened in a burst do not all hold goroutine stacks at once
// (freed stacks stay in the process's memory for a while); long enough
// that a request and its answer on a short-lived tunnel never pay the
// poller's extra system calls (registration, epoll_wait).
const hotIdle = 100 * time.Millisecond

// startPump relays between client and upstream; it runs the downstream
// direction on the calling goroutine until that goes idle (or the tunnel
// ends) and returns; done runs after both connections are closed, on the
// goroutine that ended the tunnel.
func (p *poller) startPump(client, upstream *net.TCPConn, done func(up, down int64)) {
	r := &pumpRelay{p: p, done: done}
	r.dirs[0] = pumpDir{src: client, dst: upstream}
	r.dirs[1] = pumpDir{src: upstream, dst: client}
	for i := range r.dirs {
		d := &r.dirs[i]
		rc, err := d.src.SyscallConn()
		if err != nil {
			// Not a socket we can watch: relay it the goroutine way.
			go func() { done(relay(client, upstream)) }()
			return
		}
		d.srcRC = rc
		d.running = true
	}
	go r.hot(&r.dirs[0])
	r.hot(&r.dirs[1])
}

// hot copies d while bytes keep coming, waiting in Go's network poller; a
// wait that reaches the read deadline (hotIdle after the last refresh)
// hands d to the poller.
func (r *pumpRelay) hot(d *pumpDir) {
	for {
		if now := time.Now(); d.hotUntil.Sub(now) < hotIdle/2 {
			d.hotUntil = now.Add(hotIdle)
			d.src.SetReadDeadline(d.hotUntil)
		}
		eof, err := r.waitCopy(d)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			r.handoff(d)
			return
		case eof || err != nil:
			r.endDir(d, err)
			return
		}
	}
}

// waitCopy waits for d's source to have bytes (or EOF, or an error) and
// copies them.
func (r *pumpRelay) waitCopy(d *pumpDir) (eof bool, err error) {
	if d.bulk {
		var avail int
		var serr error
		err := d.srcRC.Read(func(fd uintptr) bool {
			var again bool
			avail, eof, again, serr = queuedFD(int(fd))
			return !again
		})
		if err == nil {
			err = serr
		}
		if err != nil || eof {
			return eof, err
		}
		n, err := d.dst.ReadFrom(&io.LimitedReader{R: d.src, N: int64(avail)})
		d.n += n
		return false, err
	}
	var bp *[]byte
	var n int
	var rerr error
	err = d.srcRC.Read(func(fd uintptr) bool {
		bp = r.p.buf.Get().(*[]byte)
		n, rerr = readFD(int(fd), *bp)
		if rerr == unix.EAGAIN {
			r.p.buf.Put(bp)
			bp = nil
			return false
		}
		return true
	})
	if bp == nil {
		return false, err
	}
	defer r.p.buf.Put(bp)
	switch {
	case err != nil:
		return false, err
	case rerr != nil:
		return false, rerr
	case n == 0:
		return true, nil
	}
	w, err := d.dst.Write((*bp)[:n])
	d.n += int64(w)
	d.bulk = n == len(*bp)
	return false, err
}

// handoff gives d's socket to the poller and lets its goroutine end.
func (r *pumpRelay) handoff(d *pumpDir) {
	d.src.SetReadDeadline(time.Time{})
	r.mu.Lock()
	if d.ended {
		r.mu.Unlock()
		return
	}
	d.running = false
	kicked := d.pending // woken (abort, Shutdown) while hot
	r.mu.Unlock()
	i := r.index(d)
	if err := r.p.watch(r, i); err != nil {
		r.endDir(d, err)
		return
	}
	if kicked {
		r.dispatch(i, true)
	}
}

func readFD(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// dispatch notes news on one direction (hup: the event said the peer hung
// up or the socket failed) and starts its goroutine unless one runs.
func (r *pumpRelay) dispatch(i int, hup bool) {
	d := &r.dirs[i]
	r.mu.Lock()
	if d.ended {
		r.mu.Unlock()
		return
	}
	d.pending = true
	d.hup = d.hup || hup
	if d.running {
		r.mu.Unlock()
		return
	}
	d.running = true
	r.mu.Unlock()
	go r.pump(d)
}

// pump copies d until its source is drained and no news came meanwhile.
func (r *pumpRelay) pump(d *pumpDir) {
	for {
		r.mu.Lock()
		if !d.pending {
			d.running = false
			r.mu.Unlock()
			return
		}
		hup := d.hup
		d.pending, d.hup = false, false
		r.mu.Unlock()
		eof, err := r.drain(d, hup)
		if eof || err != nil {
			r.endDir(d, err)
			return
		}
	}
}

// drain copies what d's source holds now: it returns when the socket is
// empty (a read would block, or came back short while no hang-up was
// reported), at EOF, or on an error.
func (r *pumpRelay) drain(d *pumpDir, hup bool) (eof bool, err error) {
	for {
		if d.bulk {
			avail, eof, err := queued(d.srcRC)
			if err != nil || eof || avail == 0 {
				return eof, err
			}
			n, err := d.dst.ReadFrom(&io.LimitedReader{R: d.src, N: int64(avail)})
			d.n += n
			if err != nil {
				return false, err
			}
			continue
		}
		bp := r.p.buf.Get().(*[]byte)
		var n int
		var rerr error
		err := d.srcRC.Control(func(fd uintptr) { n, rerr = readFD(int(fd), *bp) })
		switch {
		case err != nil:
		case rerr == unix.EAGAIN:
		case rerr != nil:
			err = rerr
		case n == 0:
			eof = true
		default:
			var w int
			w, err = d.dst.Write((*bp)[:n])
			d.n += int64(w)
			d.bulk = n == len(*bp)
		}
		r.p.buf.Put(bp)
		// A short read emptied the socket's queue: bytes that arrive
		// later raise a new edge, so there is no need to read again
		// until EAGAIN — unless a FIN came with the bytes already
		// reported (hup): it raises no further edge.
		if err != nil || eof || rerr == unix.EAGAIN || n < pumpBufSize && !hup {
			return eof, err
		}
	}
}

// queued reports the bytes waiting in a socket (SIOCINQ), or EOF; zero
// bytes and no EOF means a read would block.
func queued(rc syscall.RawConn) (avail int, eof bool, err error) {
	var serr error
	err = rc.Control(func(fd uintptr) { avail, eof, _, serr = queuedFD(int(fd)) })
	if err == nil {
		err = serr
	}
	return avail, eof, err
}

// queuedFD peeks at a socket: the bytes queued, EOF, or again (a read
// would block).
func queuedFD(fd int) (avail int, eof, again bool, err error) {
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
	return max(avail, 0), false, false, err
}

// endDir ends a direction after EOF (err nil: half-close the other side,
// unless the other direction ended too and both are about to close) or an
// error (close both, and wake the other direction so it sees the close).
// The second direction to end closes both connections and runs done.
func (r *pumpRelay) endDir(d *pumpDir, err error) {
	other := &r.dirs[0]
	if d == other {
		other = &r.dirs[1]
	}
	r.mu.Lock()
	if d.ended { // a failed registration and the wake-up after an abort
		r.mu.Unlock()
		return
	}
	last := other.ended
	r.mu.Unlock()
	if err == nil && !last {
		err = d.dst.CloseWrite()
	}
	r.mu.Lock()
	if d.ended {
		r.mu.Unlock()
		return
	}
	d.ended, d.running = true, true
	both := other.ended
	abort := err != nil && !r.aborted && !errors.Is(err, io.EOF)
	if abort {
		r.aborted = true
	}
	r.mu.Unlock()
	if abort {
		r.dirs[0].src.Close()
		r.dirs[1].src.Close()
		r.dispatch(r.index(other), true)
	}
	if both {
		r.p.remove(r)
		r.dirs[0].src.Close()
		r.dirs[1].src.Close()
		r.done(r.dirs[0].n, r.dirs[1].n)
	}
}

func (r *pumpRelay) index(d *pumpDir) int {
	if d == &r.dirs[0] {
		return 0
	}
	return 1
}

// startRelay relays between client and upstream and returns at once; done
// runs once, on another goroutine, after both directions ended and both
// connections are closed. Without a poller (epoll unavailable, or after
// Shutdown) it relays with two goroutines.
func (s *Server) startRelay(client, upstream *net.TCPConn, done func(up, down int64)) {
	p := s.tunnelPoller()
	if p == nil {
		go func() { done(relay(client, upstream)) }()
		return
	}
	p.startPump(client, upstream, done)
}
