//go:build linux

package relay

import (
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller watches the sockets of idle tunnels in one edge-triggered epoll
// set, so a tunnel that carries no bytes holds no goroutine: only its two
// sockets and a tunnel (the haproxy model). A direction is handed to the
// poller after HotIdle without bytes (see tunnel); when bytes (or EOF, or
// an error) arrive on a watched socket, the poller starts a goroutine for
// that direction, which copies until the socket is drained and ends.
//
// The epoll descriptor is itself registered in Go's network poller (an
// os.File in non-blocking mode), so waiting for events takes no thread.
// Events carry a tunnel id, never a pointer; an id is never reused, so an
// event that arrives after its tunnel ended finds nothing and is dropped.
type poller struct {
	f   *os.File
	rc  syscall.RawConn
	buf sync.Pool // *[]byte of bufSize, lent while a direction copies

	mu      sync.Mutex
	next    uint64
	tunnels map[uint64]*tunnel
}

func newPoller() (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating the tunnel poller: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("creating the tunnel poller: %w", err)
	}
	f := os.NewFile(uintptr(fd), "relay-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("creating the tunnel poller: %w", err)
	}
	p := &poller{f: f, rc: rc, tunnels: make(map[uint64]*tunnel)}
	p.buf.New = func() any { b := make([]byte, bufSize); return &b }
	go p.run()
	return p, nil
}

// run dispatches events until close.
func (p *poller) run() {
	events := make([]unix.EpollEvent, 256)
	for {
		var n int
		var werr error
		err := p.rc.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), events, 0)
			if werr == unix.EINTR {
				n, werr = 0, nil
				return true
			}
			return n > 0 || werr != nil
		})
		if err != nil || werr != nil {
			return // closed
		}
		for i := range events[:n] {
			ev := &events[i]
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			p.mu.Lock()
			t := p.tunnels[key>>1]
			p.mu.Unlock()
			if t != nil {
				t.dispatch(int(key&1), ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0)
			}
		}
	}
}

// watch registers side i of t (its source socket), and t itself on
// first use. An edge-triggered socket that already has bytes (or EOF)
// queued raises an event at once, so nothing that came before is missed.
func (p *poller) watch(t *tunnel, i int) error {
	p.mu.Lock()
	if t.id == 0 {
		p.next++
		t.id = p.next
		p.tunnels[t.id] = t
	}
	key := t.id<<1 | uint64(i)
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(uint32(key)), Pad: int32(uint32(key >> 32))}
	var aerr error
	err := t.dirs[i].srcRC.Control(func(fd uintptr) {
		aerr = p.ctl(unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = aerr
	}
	if err != nil {
		return fmt.Errorf("watching the tunnel: %w", err)
	}
	return nil
}

func (p *poller) ctl(op, fd int, ev *unix.EpollEvent) error {
	var cerr error
	err := p.rc.Control(func(epfd uintptr) { cerr = unix.EpollCtl(int(epfd), op, fd, ev) })
	if err != nil {
		return err
	}
	return cerr
}

func (p *poller) remove(t *tunnel) {
	p.mu.Lock()
	if t.id != 0 {
		delete(p.tunnels, t.id)
	}
	p.mu.Unlock()
}

// kickAll wakes every tunnel's two directions (Engine.Kick): sockets
// closed elsewhere left the epoll set without an event, and each tunnel
// must see the close and end.
func (p *poller) kickAll() {
	p.mu.Lock()
	ts := make([]*tunnel, 0, len(p.tunnels))
	for _, t := range p.tunnels {
		ts = append(ts, t)
	}
	p.mu.Unlock()
	for _, t := range ts {
		t.dispatch(0, true)
		t.dispatch(1, true)
	}
}

// close stops run; tunnels still registered are not ended (Engine.Close
// is called only once every tunnel ended).
func (p *poller) close() { p.f.Close() }
