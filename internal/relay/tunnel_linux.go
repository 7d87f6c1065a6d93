//go:build linux

package relay

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// tunnel is one relayed connection pair: two directions, each copied by a
// goroutine that exists only while the direction is busy.
//
// A direction starts hot: its goroutine waits for bytes in Go's network
// poller, as a plain copy loop would (no extra system call per message).
// After HotIdle without a byte it hands its socket to the poller and its
// goroutine ends; from then on the poller starts a goroutine when the
// source has bytes (or news: EOF, an error) waiting, which copies until
// the socket is drained and ends. Short-lived tunnels never reach the
// poller; idle ones hold no goroutine. Both phases copy with the same
// step (stream.step).
//
// EOF half-closes the other side (CloseWrite), so a client that finishes
// sending still gets the whole answer; an error closes both connections,
// which ends the other direction too. When both directions have ended,
// both connections are closed and done runs, once.
type tunnel struct {
	p    *poller
	id   uint64
	dirs [2]dir // 0: client to upstream (up), 1: upstream to client (down)
	done func(Stats)

	mu      sync.Mutex // guards the flags below and the dirs' flags
	aborted bool
}

type dir struct {
	stream // n is read once both directions ended

	hotUntil time.Time // the read deadline of the hot phase

	pending bool // an event arrived since the direction last drained
	hup     bool // ... and it said the peer hung up (or the socket failed)
	running bool // a goroutine owns the direction (or it ended)
	ended   bool
}

// start relays between client and upstream; it runs the downstream
// direction on the calling goroutine until that goes idle (or the tunnel
// ends) and returns; done runs after both connections are closed, on the
// goroutine that ended the tunnel.
func (p *poller) start(client, upstream *net.TCPConn, done func(Stats)) {
	t := &tunnel{p: p, done: done}
	t.dirs[0].src, t.dirs[0].dst = client, upstream
	t.dirs[1].src, t.dirs[1].dst = upstream, client
	for i := range t.dirs {
		d := &t.dirs[i]
		rc, err := d.src.SyscallConn()
		if err != nil {
			// Not a socket we can watch: relay it the goroutine way.
			go func() { done(pair(client, upstream)) }()
			return
		}
		d.srcRC = rc
		d.running = true
	}
	go t.hot(&t.dirs[0])
	t.hot(&t.dirs[1])
}

// hot copies d while bytes keep coming, waiting in Go's network poller; a
// wait that reaches the read deadline (HotIdle after the last refresh)
// hands d to the poller.
func (t *tunnel) hot(d *dir) {
	for {
		if now := time.Now(); d.hotUntil.Sub(now) < HotIdle/2 {
			d.hotUntil = now.Add(HotIdle)
			d.src.SetReadDeadline(d.hotUntil)
		}
		res, err := d.step(&t.p.buf, true)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			t.handoff(d)
			return
		case err != nil || res == eof:
			t.endDir(d, err)
			return
		}
	}
}

// handoff gives d's socket to the poller and lets its goroutine end.
func (t *tunnel) handoff(d *dir) {
	d.src.SetReadDeadline(time.Time{})
	t.mu.Lock()
	if d.ended {
		t.mu.Unlock()
		return
	}
	d.running = false
	kicked := d.pending // woken (abort, Kick) while hot
	t.mu.Unlock()
	i := t.index(d)
	if err := t.p.watch(t, i); err != nil {
		t.endDir(d, err)
		return
	}
	if kicked {
		t.dispatch(i, true)
	}
}

// dispatch notes news on one direction (hup: the event said the peer hung
// up or the socket failed) and starts its goroutine unless one runs.
func (t *tunnel) dispatch(i int, hup bool) {
	d := &t.dirs[i]
	t.mu.Lock()
	if d.ended {
		t.mu.Unlock()
		return
	}
	d.pending = true
	d.hup = d.hup || hup
	if d.running {
		t.mu.Unlock()
		return
	}
	d.running = true
	t.mu.Unlock()
	go t.pump(d)
}

// pump copies d until its source is drained and no news came meanwhile.
func (t *tunnel) pump(d *dir) {
	for {
		t.mu.Lock()
		if !d.pending {
			d.running = false
			t.mu.Unlock()
			return
		}
		hup := d.hup
		d.pending, d.hup = false, false
		t.mu.Unlock()
		end, err := t.drain(d, hup)
		if end || err != nil {
			t.endDir(d, err)
			return
		}
	}
}

// drain copies what d's source holds now: it returns when the socket is
// empty (a read would block, or came back short while no hang-up was
// reported), at EOF, or on an error.
func (t *tunnel) drain(d *dir, hup bool) (end bool, err error) {
	for {
		res, err := d.step(&t.p.buf, false)
		switch {
		case err != nil:
			return false, err
		case res == eof:
			return true, nil
		case res == again:
			return false, nil
		case res == emptied && !hup:
			// A short read emptied the socket's queue: bytes that arrive
			// later raise a new edge, so there is no need to read again
			// until it would block — unless a FIN came with the bytes
			// already reported (hup): it raises no further edge.
			return false, nil
		}
	}
}

// endDir ends a direction after EOF (err nil: half-close the other side,
// unless the other direction ended too and both are about to close) or an
// error (close both, and wake the other direction so it sees the close).
// The second direction to end closes both connections and runs done.
func (t *tunnel) endDir(d *dir, err error) {
	other := &t.dirs[0]
	if d == other {
		other = &t.dirs[1]
	}
	t.mu.Lock()
	if d.ended { // a failed registration and the wake-up after an abort
		t.mu.Unlock()
		return
	}
	last := other.ended
	t.mu.Unlock()
	if err == nil && !last {
		err = d.dst.CloseWrite()
	}
	t.mu.Lock()
	if d.ended {
		t.mu.Unlock()
		return
	}
	d.ended, d.running = true, true
	both := other.ended
	abort := err != nil && !t.aborted && !errors.Is(err, io.EOF)
	if abort {
		t.aborted = true
	}
	t.mu.Unlock()
	if abort {
		t.dirs[0].src.Close()
		t.dirs[1].src.Close()
		t.dispatch(t.index(other), true)
	}
	if both {
		t.p.remove(t)
		t.dirs[0].src.Close()
		t.dirs[1].src.Close()
		t.done(Stats{Up: t.dirs[0].n, Down: t.dirs[1].n})
	}
}

func (t *tunnel) index(d *dir) int {
	if d == &t.dirs[0] {
		return 0
	}
	return 1
}
