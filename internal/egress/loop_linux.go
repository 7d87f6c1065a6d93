//go:build linux

package egress

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// The event-loop engine of the explicit proxy (gateway.proxyEngine: loop).
//
// A tunnel costs a goroutine-per-connection server about twice haproxy's
// CPU: every blocking read parks a goroutine and every wake-up goes
// through Go's network poller and the scheduler (docs/benchmarks.md). Here
// each loop (one per P, GOMAXPROCS) is one goroutine with its own epoll set
// of non-blocking sockets; all loops share the listening socket
// (EPOLLEXCLUSIVE). A loop waits for its set in Go's network poller and
// makes its socket calls raw (loop_sys_linux.go), so it never holds a P in
// a blocking system call. A connection is a state machine:
//
//	head     read the request head (bounded by maxProxyHead, cut at
//	         headTimeout); anything but CONNECT goes to the goroutine path
//	         (handleProxy) with the bytes read so far
//	decide   proxyDecide, inline (the indexed policy costs < 1 µs); on a
//	         worker goroutine when it may wait for the other replicas' names
//	resolve  a name the resolver holds (CachedResolver: airlock DNS's
//	         zones and cache) is answered inline; any other is resolved by a
//	         worker goroutine that posts the answer back through the loop's
//	         eventfd
//	connect  non-blocking connects to each target the dialer's checks
//	         accept, in turn, within dialTimeout
//	relay    200, then read/write through the loop's buffer: a partial
//	         write parks the rest and waits for EPOLLOUT (the source is not
//	         read meanwhile), EOF half-closes the other side; a tunnel that
//	         moved bulkHandoff bytes goes to the relay engine, which splices
//
// Every flow ends in the same decision record and metrics as the goroutine
// path (finish), counted in the Server's WaitGroup, so Shutdown drains
// both engines alike.

// bulkHandoff is how many bytes a tunnel relays in its loop before it is
// handed to the relay engine (splice, and no loop time for bulk copies).
// A variable for tests, which relay bulk in the loop.
var bulkHandoff int64 = 256 << 10

// errNoLoops says the event-loop engine cannot serve this listener.
var errNoLoops = errors.New("the event-loop engine needs a TCP listener")

// loop states of a connection.
const (
	lsHead = iota
	lsWait // a goroutine decides or resolves
	lsConnect
	lsRelay
	lsDone
)

// lconn is one explicit-proxy connection of a loop.
type lconn struct {
	st      int
	fd, ufd int   // client, upstream (-1: none)
	tag     int32 // epoll tag of fd and ufd (see loop.tag)
	// clientIn: the client had bytes (an edge) before its tunnel relayed.
	clientIn bool
	f        *flow
	head     []byte // a partial head
	early    []byte // bytes the client sent after its head
	// connect
	dsts     []netip.AddrPort
	next     int
	errs     []error
	deny     *DenyError
	deadline time.Time
	ti       int    // index in the loop's timers, -1 when none
	seq      uint64 // the goroutine job whose answer is awaited
	// relay: 0 client to upstream, 1 upstream to client
	pend  [2][]byte // bytes read but not yet taken by the destination
	eof   [2]bool   // the source sent EOF (the destination was half-closed)
	moved int64
	ka    bool // the upstream's keepalive is set
}

// loop is one event loop.
type loop struct {
	s     *Server
	ctx   context.Context // for flows handed to the goroutine path
	ep    int             // epoll
	epf   *os.File        // ep, in Go's network poller
	eprc  syscall.RawConn
	epDL  time.Time // epf's read deadline
	efd   int       // eventfd: job answers and commands
	lfd   int       // the listening socket (this loop's dup), -1 once stopped
	conns []*lconn  // by descriptor
	live  int       // flows
	tags  int32
	timer timers
	buf   []byte
	hr    *bufio.Reader
	hsrc  bytes.Reader
	// pausedUntil: accepting paused (out of descriptors) until then.
	pausedUntil time.Time
	pauseFor    time.Duration

	jobSeq uint64
	// onStop runs (on the loop) when the loop stopped accepting.
	onStop func()
	nLive  atomic.Int32 // live, for closeAll's count

	mu      sync.Mutex
	answers []jobAnswer
	woken   bool // efd was written and not yet read
	stop    bool // stop accepting
	kill    bool // close every connection
	exited  bool
}

// jobAnswer is a goroutine's result for a connection waiting in lsWait.
type jobAnswer struct {
	c       *lconn
	seq     uint64
	decided bool // the job decided the flow: f and a
	f       flow
	a       *answer
	addrs   []netip.Addr
	err     error
}

// serveProxyLoops serves the explicit proxy on ln with GOMAXPROCS event
// loops until ctx ends or Shutdown; it returns then, while the loops go on
// relaying their tunnels until those end.
func (s *Server) serveProxyLoops(ctx context.Context, ln net.Listener) error {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return errNoLoops
	}
	var loops []*loop
	release := func() {
		for _, l := range loops {
			l.release()
		}
	}
	for range runtime.GOMAXPROCS(0) {
		l, err := newLoop(s, ctx, tl)
		if err != nil {
			release()
			return fmt.Errorf("%w: %v", errNoLoops, err)
		}
		loops = append(loops, l)
	}
	// Every loop stops accepting when one does (Shutdown tells them all;
	// a loop out of luck with the listener tells the others) or when ctx
	// ends; ServeProxy returns then, and the Go listener, only the loops'
	// source of descriptors, is closed.
	stopped := make(chan struct{})
	var once sync.Once
	stop := func() {
		once.Do(func() {
			for _, l := range loops {
				l.stopAccepting()
			}
			close(stopped)
		})
	}
	for _, l := range loops {
		l.onStop = func() { go stop() }
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		release()
		ln.Close()
		return nil
	}
	s.loops = append(s.loops, loops...)
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	for _, l := range loops {
		go l.run()
	}
	defer context.AfterFunc(ctx, stop)()
	<-stopped
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
	ln.Close()
	return nil
}

func newLoop(s *Server, ctx context.Context, tl *net.TCPListener) (*loop, error) {
	l := &loop{s: s, ctx: ctx, ep: -1, efd: -1, lfd: -1, buf: make([]byte, 64<<10)}
	l.hr = bufio.NewReaderSize(&l.hsrc, maxProxyHead)
	rc, err := tl.SyscallConn()
	if err != nil {
		return nil, err
	}
	var derr error
	if err := rc.Control(func(fd uintptr) {
		l.lfd, derr = dupCloexec(int(fd))
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	if l.ep, err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC); err != nil {
		l.release()
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// The loop waits for its epoll set in Go's network poller (wait): a
	// non-blocking descriptor makes the os.File pollable.
	if err := syscall.SetNonblock(l.ep, true); err != nil {
		l.release()
		return nil, os.NewSyscallError("fcntl", err)
	}
	l.epf = os.NewFile(uintptr(l.ep), "egress-epoll")
	if l.eprc, err = l.epf.SyscallConn(); err != nil {
		l.release()
		return nil, err
	}
	efd, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errno != 0 {
		l.release()
		return nil, os.NewSyscallError("eventfd2", errno)
	}
	l.efd = int(efd)
	if err := l.ctl(syscall.EPOLL_CTL_ADD, l.efd, syscall.EPOLLIN, 0); err != nil {
		l.release()
		return nil, err
	}
	if err := l.ctl(syscall.EPOLL_CTL_ADD, l.lfd, syscall.EPOLLIN|epollExclusive, 0); err != nil {
		l.release()
		return nil, err
	}
	// Go sets TCP_NODELAY on its connections. Accepted sockets inherit it
	// from the listening socket, as they inherit keepalive (listenTCP).
	if err := sysSetsockoptInt(l.lfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1); err != nil {
		l.release()
		return nil, os.NewSyscallError("setsockopt", err)
	}
	return l, nil
}

// epollExclusive wakes one of the loops waiting on the shared listener.
const epollExclusive = 1 << 28

func dupCloexec(fd int) (int, error) {
	nfd, err := fcntl(fd, syscall.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("fcntl", err)
	}
	return nfd, nil
}

func fcntl(fd, cmd, arg int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// release closes the loop's descriptors (a loop that never ran).
func (l *loop) release() {
	if l.epf != nil {
		l.epf.Close()
		l.epf, l.ep = nil, -1
	}
	for _, fd := range []*int{&l.lfd, &l.efd, &l.ep} {
		if *fd >= 0 {
			sysClose(*fd)
			*fd = -1
		}
	}
}

func (l *loop) ctl(op, fd int, events uint32, tag int32) error {
	ev := syscall.EpollEvent{Events: events, Fd: int32(fd), Pad: tag}
	if err := sysEpollCtl(l.ep, op, fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// stopAccepting tells the loop to stop accepting (Shutdown, or the
// serving context ended).
func (l *loop) stopAccepting() { l.command(func() { l.stop = true }) }

// closeAll tells the loop to close every connection (Shutdown's deadline)
// and returns how many flows it had.
func (l *loop) closeAll() int {
	n := int(l.nLive.Load())
	l.command(func() { l.kill = true })
	return n
}

func (l *loop) command(set func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.exited {
		return
	}
	set()
	l.wakeLocked()
}

// post hands a job's answer to the loop.
func (l *loop) post(a jobAnswer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.exited {
		return
	}
	l.answers = append(l.answers, a)
	l.wakeLocked()
}

func (l *loop) wakeLocked() {
	if l.woken {
		return
	}
	l.woken = true
	one := [8]byte{1}
	sysWrite(l.efd, one[:])
}

// run is the loop. It ends once accepting stopped and no flow is left.
func (l *loop) run() {
	events := make([]syscall.EpollEvent, 256)
	for {
		if l.lfd < 0 && l.live == 0 {
			l.exit()
			return
		}
		n, err := l.wait(events)
		if err != nil {
			// Cannot happen with a valid epoll descriptor; end every flow
			// rather than spin.
			l.s.log.Error("egress event loop failed", keyError, err.Error())
			l.endAll(os.NewSyscallError("epoll_wait", err))
			l.closeListener()
			continue
		}
		for _, ev := range events[:max(n, 0)] {
			fd := int(ev.Fd)
			switch {
			case fd == l.efd:
				l.drain()
			case fd == l.lfd && fd >= 0:
				l.accept()
			case fd < len(l.conns) && l.conns[fd] != nil && l.conns[fd].tag == ev.Pad:
				l.event(l.conns[fd], fd, ev.Events)
			}
		}
		l.expire(time.Now())
	}
}

func (l *loop) exit() {
	l.mu.Lock()
	l.exited = true
	l.mu.Unlock()
	l.release()
}

// wait returns the events ready in the loop's epoll set. When there are
// none it parks the goroutine in Go's network poller until the set is
// readable or the next deadline passes (then n is 0): the loop never holds
// its P in a blocking system call, so goroutines it starts (name
// resolution) and the rest of the process run at once, on this thread
// when it is free. An epoll set polled from another one signals only when
// an item is added to its ready list, so the loop parks only after
// epoll_wait found the list empty.
func (l *loop) wait(events []syscall.EpollEvent) (int, error) {
	next := l.timer.next()
	if !l.pausedUntil.IsZero() && (next.IsZero() || l.pausedUntil.Before(next)) {
		next = l.pausedUntil
	}
	if !next.Equal(l.epDL) {
		l.epf.SetReadDeadline(next)
		l.epDL = next
	}
	var (
		n    int
		werr error
	)
	err := l.eprc.Read(func(uintptr) bool {
		n, werr = sysEpollPoll(l.ep, events)
		if werr == syscall.EINTR {
			n, werr = 0, nil
		}
		return n > 0 || werr != nil
	})
	switch {
	case werr != nil:
		return 0, os.NewSyscallError("epoll_wait", werr)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, nil
	}
	return n, err
}

// drain takes the job answers and commands posted through the eventfd.
func (l *loop) drain() {
	var b [8]byte
	sysRead(l.efd, b[:])
	l.mu.Lock()
	answers := l.answers
	l.answers = nil
	l.woken = false
	stop, kill := l.stop, l.kill
	l.kill = false
	l.mu.Unlock()
	for _, a := range answers {
		if a.c.st == lsWait && a.c.seq == a.seq {
			l.answered(a.c, a)
		}
	}
	if stop {
		l.closeListener()
	}
	if kill {
		l.endAll(errors.New("closed at the shutdown deadline"))
	}
}

func (l *loop) closeListener() {
	if l.lfd >= 0 {
		// The listening socket has other descriptors (Go's listener, the
		// other loops' dups): closing this one alone would leave it in
		// the epoll set.
		sysEpollCtl(l.ep, syscall.EPOLL_CTL_DEL, l.lfd, &syscall.EpollEvent{})
		sysClose(l.lfd)
		l.lfd = -1
		if l.onStop != nil {
			l.onStop()
		}
	}
}

func (l *loop) endAll(err error) {
	for _, c := range l.conns {
		if c != nil && c.st != lsDone {
			if c.f.err == nil && c.st != lsRelay {
				c.f.err = err
			}
			l.end(c)
		}
	}
}

func (l *loop) publish() { l.nLive.Store(int32(l.live)) }

// accept takes new connections (a bounded batch, so that one loop does
// not take a whole burst).
func (l *loop) accept() {
	if !l.pausedUntil.IsZero() {
		return
	}
	for range 32 {
		fd, src, err := sysAccept4(l.lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		switch err {
		case nil:
		case syscall.EAGAIN, syscall.ECONNABORTED, syscall.EINTR:
			return
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM:
			// Out of descriptors: stop watching the listener for a while
			// (level-triggered, it would wake the loop at once again).
			l.pauseFor = min(max(2*l.pauseFor, 5*time.Millisecond), time.Second)
			l.pausedUntil = time.Now().Add(l.pauseFor)
			sysEpollCtl(l.ep, syscall.EPOLL_CTL_DEL, l.lfd, &syscall.EpollEvent{})
			l.s.log.Warn("egress accept failed", keyError, os.NewSyscallError("accept4", err).Error())
			return
		default:
			l.s.log.Warn("egress accept failed", keyError, os.NewSyscallError("accept4", err).Error())
			return
		}
		l.pauseFor = 0
		if !l.s.trackFlow() {
			sysClose(fd)
			l.closeListener()
			return
		}
		c := &lconn{fd: fd, ufd: -1, ti: -1, tag: l.nextTag(),
			f: &flow{listener: listenerProxy, start: l.s.now(), src: src}}
		l.put(fd, c)
		l.live++
		if err := l.ctl(syscall.EPOLL_CTL_ADD, fd, edgeTriggered, c.tag); err != nil {
			c.f.err = err
			l.end(c)
			continue
		}
		l.timer.set(c, time.Now().Add(l.s.headTimeout))
	}
	l.publish()
}

// resume watches the listener again after a pause.
func (l *loop) resume(now time.Time) {
	if l.pausedUntil.IsZero() || now.Before(l.pausedUntil) {
		return
	}
	l.pausedUntil = time.Time{}
	if l.lfd >= 0 {
		l.ctl(syscall.EPOLL_CTL_ADD, l.lfd, syscall.EPOLLIN|epollExclusive, 0)
	}
}

func (l *loop) nextTag() int32 {
	l.tags++
	return l.tags
}

func (l *loop) put(fd int, c *lconn) {
	for fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*lconn, len(l.conns)+64)...)
	}
	l.conns[fd] = c
}

// event handles readiness of fd, a descriptor of c.
func (l *loop) event(c *lconn, fd int, ev uint32) {
	switch c.st {
	case lsHead:
		if fd == c.fd && ev&(syscall.EPOLLIN|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
			l.readHead(c)
		}
	case lsWait, lsConnect:
		if fd == c.ufd {
			l.connected(c, ev)
			return
		}
		if ev&(syscall.EPOLLIN|syscall.EPOLLRDHUP) != 0 {
			c.clientIn = true // read once the tunnel relays
		}
		if ev&(syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
			c.f.err = errors.New("the client reset the connection before its tunnel was established")
			l.end(c)
		}
	case lsRelay:
		l.relayEvent(c, fd == c.ufd, ev)
	}
}

// readHead reads the request head; once it is whole, decides. A read
// shorter than asked for drained the socket: more bytes come with a new
// edge.
func (l *loop) readHead(c *lconn) {
	room := maxProxyHead - len(c.head)
	n, err := sysRead(c.fd, l.buf[:room])
	if err == syscall.EAGAIN || err == syscall.EINTR {
		return
	}
	if err != nil || n == 0 {
		switch {
		case err != nil:
			err = os.NewSyscallError("read", err)
		case c.head != nil:
			err = io.ErrUnexpectedEOF
		default:
			err = io.EOF
		}
		l.answer(c, malformedHead(c.f, err))
		return
	}
	data := l.buf[:n]
	if c.head != nil {
		c.head = append(c.head, data...)
		data = c.head
	}
	if !isConnect(data) {
		l.handOff(c, data)
		return
	}
	end := headEnd(data)
	if end < 0 {
		if len(data) >= maxProxyHead {
			l.answer(c, malformedHead(c.f, errors.New("proxy request head too large")))
			return
		}
		if c.head == nil {
			c.head = bytes.Clone(data)
		}
		return
	}
	l.hsrc.Reset(data[:end])
	l.hr.Reset(&l.hsrc)
	req, err := http.ReadRequest(l.hr)
	if err != nil {
		l.answer(c, malformedHead(c.f, err))
		return
	}
	if end < len(data) {
		c.early = bytes.Clone(data[end:])
	}
	c.head = nil
	l.timer.clear(c)
	if l.s.remote != nil && targetIsAddr(req) {
		// Deciding may wait for the other replicas' names (only an
		// address has names to ask for).
		f := *c.f
		c.deadline = time.Now().Add(l.s.dialer.timeout)
		l.job(c, func(a *jobAnswer) {
			a.decided, a.f = true, f
			a.a = l.s.proxyDecide(&a.f, req)
			if a.a == nil && a.f.dialKind() == dialName {
				a.addrs, a.err = l.s.dialer.lookupTimeout(a.f.name)
			}
		})
		return
	}
	if a := l.s.proxyDecide(c.f, req); a != nil {
		l.answer(c, a)
		return
	}
	l.dial(c)
}

// targetIsAddr says whether a proxy request's target is an IP address.
func targetIsAddr(req *http.Request) bool {
	host, _, _, _ := proxyTarget(req)
	_, err := netip.ParseAddr(host)
	return err == nil
}

// isConnect says whether data may be the start of a CONNECT request.
func isConnect(data []byte) bool {
	const m = "CONNECT "
	k := min(len(data), len(m))
	return string(data[:k]) == m[:k]
}

// headEnd returns the length of the request head at the start of b (up to
// and including the empty line that ends it, "\r\n" or a bare "\n" as
// net/textproto reads lines), or -1 when b does not hold a whole head yet.
func headEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
}

// dial starts dialling a decided flow (flow.dialKind).
func (l *loop) dial(c *lconn) {
	f := c.f
	c.deadline = time.Now().Add(l.s.dialer.timeout)
	switch f.dialKind() {
	case dialName:
		name := f.name
		if cr, ok := l.s.dialer.resolver.(CachedResolver); ok {
			if addrs, ok := cr.CachedNetIP("ip", name.String()); ok {
				c.dsts, c.deny = l.s.dialer.targets(addrs, f.port)
				l.connectNext(c)
				return
			}
		}
		l.job(c, func(a *jobAnswer) { a.addrs, a.err = l.s.dialer.lookupTimeout(name) })
	case dialAddr:
		f.upstream = f.dst
		dst := netip.AddrPortFrom(f.dst.Addr().Unmap(), f.dst.Port())
		if reason, class := l.s.dialer.Check(dst.Addr(), f.dialInternal()); reason != "" {
			l.fail(c, &DenyError{Reason: reason, Addr: dst.Addr(), Class: class})
			return
		}
		c.dsts = []netip.AddrPort{dst}
		l.connectNext(c)
	default:
		l.fail(c, errNothingToDial)
	}
}

// lookupTimeout resolves name within the dial timeout (the loop bounds the
// connects that follow by the same deadline).
func (d *Dialer) lookupTimeout(name dnsname.Name) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	return d.lookup(ctx, name)
}

// job runs work on a goroutine; its answer comes back through post.
func (l *loop) job(c *lconn, work func(*jobAnswer)) {
	c.st = lsWait
	l.jobSeq++
	c.seq = l.jobSeq
	a := jobAnswer{c: c, seq: c.seq}
	l.s.jobs.run(func() {
		work(&a)
		l.post(a)
	})
}

// jobWorkers runs the loops' jobs (name resolution, decisions that may
// wait) on goroutines that stay: a new goroutine per job would grow its
// stack through the resolver each time.
type jobWorkers struct {
	once, stopOnce sync.Once
	q              chan func()
	quit           chan struct{}
}

// jobWorkersIdle is how many workers wait for jobs; a job finding none
// free gets a goroutine of its own (a slow name never holds up the rest).
const jobWorkersIdle = 16

func (w *jobWorkers) run(fn func()) {
	w.once.Do(func() {
		w.q, w.quit = make(chan func()), make(chan struct{})
		for range jobWorkersIdle {
			go func() {
				for {
					select {
					case fn := <-w.q:
						fn()
					case <-w.quit:
						return
					}
				}
			}()
		}
	})
	select {
	case w.q <- fn:
	default:
		go fn()
	}
}

// stop ends the idle workers (Shutdown, once every flow ended).
func (w *jobWorkers) stop() {
	w.once.Do(func() {}) // never started: run gives each job its own goroutine
	if w.quit != nil {
		w.stopOnce.Do(func() { close(w.quit) })
	}
}

// answered continues a flow after its job.
func (l *loop) answered(c *lconn, a jobAnswer) {
	if a.decided {
		*c.f = a.f
		if a.a != nil {
			l.answer(c, a.a)
			return
		}
		if c.f.dialKind() != dialName {
			l.dial(c)
			return
		}
	}
	if a.err != nil {
		l.fail(c, a.err)
		return
	}
	c.dsts, c.deny = l.s.dialer.targets(a.addrs, c.f.port)
	l.connectNext(c)
}

// connectNext starts a non-blocking connect to the next target; when none
// is left the dial failed.
func (l *loop) connectNext(c *lconn) {
	if c.ufd >= 0 {
		l.closeUp(c)
	}
	for c.next < len(c.dsts) && time.Now().Before(c.deadline) {
		dst := c.dsts[c.next]
		c.next++
		fd, err := l.s.dialer.connectStart(dst)
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("dialing %s: %w", dst, err))
			continue
		}
		c.ufd = fd
		l.put(fd, c)
		if err := l.ctl(syscall.EPOLL_CTL_ADD, fd, edgeTriggered, c.tag); err != nil {
			c.errs = append(c.errs, fmt.Errorf("dialing %s: %w", dst, err))
			l.closeUp(c)
			continue
		}
		c.st = lsConnect
		l.timer.set(c, c.deadline)
		return
	}
	if c.next < len(c.dsts) {
		c.errs = append(c.errs, fmt.Errorf("dialing %s: %w", c.dsts[c.next], os.ErrDeadlineExceeded))
	}
	if c.f.dialKind() == dialName {
		l.fail(c, noTarget(c.f.name, c.errs, c.deny))
		return
	}
	l.fail(c, errors.Join(c.errs...))
}

// connected handles the upstream's readiness while connecting.
func (l *loop) connected(c *lconn, ev uint32) {
	dst := c.dsts[c.next-1]
	var err error
	if ev&(syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
		// Writable without an error flag is connected; with one, ask why.
		e, gerr := sysGetsockoptInt(c.ufd, syscall.SOL_SOCKET, syscall.SO_ERROR)
		switch {
		case gerr != nil:
			err = os.NewSyscallError("getsockopt", gerr)
		case e != 0:
			err = os.NewSyscallError("connect", syscall.Errno(e))
		default:
			err = os.NewSyscallError("connect", syscall.ECONNRESET)
		}
	}
	if err != nil {
		c.errs = append(c.errs, fmt.Errorf("dialing %s: %w", dst, err))
		l.connectNext(c)
		return
	}
	l.timer.clear(c)
	c.f.upstream = dst
	if _, err := sysWrite(c.fd, connectEstablished); err != nil {
		c.f.err = os.NewSyscallError("write", err)
		l.end(c)
		return
	}
	c.st = lsRelay
	l.s.m.Tunnels.Inc()
	l.timer.set(c, time.Now().Add(keepAliveAfter))
	if len(c.early) > 0 {
		copy(l.buf, c.early)
		n := len(c.early)
		c.early = nil
		if !l.send(c, 0, n) {
			return
		}
	}
	// Edges seen before relaying are not seen again: read what they
	// announced.
	if c.clientIn && c.pend[0] == nil && !l.pump(c, 0, true) {
		return
	}
	if ev&(syscall.EPOLLIN|syscall.EPOLLRDHUP) != 0 {
		l.pump(c, 1, true)
	}
}

// connectStart creates a non-blocking socket with TCP_NODELAY (Go's
// default) and the dialer's source address, and starts its connect to dst.
// Its keepalive is set once the tunnel lived keepAliveAfter
// (lconn.keepAlive).
func (d *Dialer) connectStart(dst netip.AddrPort) (int, error) {
	family := syscall.AF_INET
	if dst.Addr().Is6() {
		family = syscall.AF_INET6
	}
	fd, err := sysSocket(family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if err := sysSetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1); err != nil {
		sysClose(fd)
		return -1, os.NewSyscallError("setsockopt", err)
	}
	if src := d.source(dst.Addr()); src.IsValid() {
		if err := sysBind(fd, netip.AddrPortFrom(src, 0)); err != nil {
			sysClose(fd)
			return -1, os.NewSyscallError("bind", err)
		}
	}
	if err := sysConnect(fd, dst); err != nil {
		sysClose(fd)
		return -1, os.NewSyscallError("connect", err)
	}
	return fd, nil
}

// keepAliveAfter is how long a tunnel relays before its upstream gets the
// dialer's keepalive (SO_KEEPALIVE and three timers: four system calls
// that most tunnels, short ones, never need). Probes start only after
// keepAlive.Idle (30 s) without traffic, so a tunnel that lives long
// enough to need them has them as net.Dialer would set them.
const keepAliveAfter = time.Second

// keepAlive sets the upstream's keepalive, once.
func (c *lconn) keepAlive() {
	if c.ka || c.ufd < 0 {
		return
	}
	c.ka = true
	for _, o := range [...]struct{ level, opt, v int }{
		{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(keepAlive.Idle.Seconds())},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(keepAlive.Interval.Seconds())},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAlive.Count},
	} {
		sysSetsockoptInt(c.ufd, o.level, o.opt, o.v)
	}
}

// fail ends a flow whose dial failed, with its answer.
func (l *loop) fail(c *lconn, err error) {
	c.f.dialFailed(err)
	l.answer(c, dialAnswer(c.f))
}

// answer sends a (one write: a fresh socket takes it whole), half-closes
// the client and ends the flow.
func (l *loop) answer(c *lconn, a *answer) {
	sysWrite(c.fd, a.bytes())
	sysShutdown(c.fd, syscall.SHUT_WR)
	l.end(c)
}

// edgeTriggered is how client and upstream sockets are watched, added
// once and never modified: every read drains its socket (to EAGAIN, a
// short read or EOF) or leaves bytes in pend, which is written when the
// destination's next edge says it has room and is followed by a read of
// the source.
const edgeTriggered uint32 = syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | 1<<31 // EPOLLET

// relayEvent moves bytes of a tunnel on an edge of one side (up: the
// upstream).
func (l *loop) relayEvent(c *lconn, up bool, ev uint32) {
	in, out := 0, 1 // directions read from / written to this side
	if up {
		in, out = 1, 0
	}
	if ev&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 && c.pend[out] != nil {
		if !l.flush(c, out) {
			return
		}
		// Direction out's source was not read while its bytes waited.
		if c.pend[out] == nil && !c.eof[out] && !l.pump(c, out, true) {
			return
		}
	}
	if ev&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 && c.pend[in] == nil && !c.eof[in] {
		if !l.pump(c, in, ev&(syscall.EPOLLRDHUP|syscall.EPOLLERR|syscall.EPOLLHUP) != 0) {
			return
		}
	}
	if ev&(syscall.EPOLLERR|syscall.EPOLLHUP) != 0 && c.eof[in] && c.pend[out] == nil {
		// Nothing more comes from this side and it takes nothing more.
		l.end(c)
		return
	}
	if c.moved >= bulkHandoff && c.pend[0] == nil && c.pend[1] == nil && !c.eof[0] && !c.eof[1] {
		l.bulk(c)
	}
}

// sides returns direction d's source and destination descriptors.
func (c *lconn) sides(d int) (src, dst int) {
	if d == 0 {
		return c.fd, c.ufd
	}
	return c.ufd, c.fd
}

// pump reads direction d's source and writes to its destination until the
// source is drained, the destination is full or the source ended. false:
// the tunnel ended. A short read drained the socket, and bytes or a FIN
// arriving later bring a new edge; but a FIN already queued behind the
// bytes (the edge said RDHUP) brings none, so then, and whenever the
// edge is not known (all), it reads on to EAGAIN or EOF.
func (l *loop) pump(c *lconn, d int, all bool) bool {
	src, dst := c.sides(d)
	for {
		n, err := sysRead(src, l.buf)
		switch {
		case err == syscall.EAGAIN:
			return true
		case err == syscall.EINTR:
			continue
		case err != nil:
			l.end(c)
			return false
		case n == 0:
			c.eof[d] = true
			if c.eof[1-d] {
				l.end(c) // closing sends the FIN
				return false
			}
			sysShutdown(dst, syscall.SHUT_WR)
			return true
		}
		if !l.send(c, d, n) {
			return false
		}
		if c.pend[d] != nil || n < len(l.buf) && !all {
			return true
		}
	}
}

// send writes l.buf[:n] to direction d's destination; what it does not
// take waits in c.pend[d]. false: the tunnel ended.
func (l *loop) send(c *lconn, d, n int) bool {
	w, ok := l.write(c, d, l.buf[:n])
	if ok && w < n {
		c.pend[d] = bytes.Clone(l.buf[w:n])
	}
	return ok
}

// flush writes direction d's pending bytes. false: the tunnel ended.
func (l *loop) flush(c *lconn, d int) bool {
	w, ok := l.write(c, d, c.pend[d])
	if ok {
		if c.pend[d] = c.pend[d][w:]; len(c.pend[d]) == 0 {
			c.pend[d] = nil
		}
	}
	return ok
}

// write writes p to direction d's destination and counts what it took;
// on an error other than EAGAIN it ends the tunnel (ok false).
func (l *loop) write(c *lconn, d int, p []byte) (w int, ok bool) {
	_, dst := c.sides(d)
	w, err := sysWrite(dst, p)
	w = max(w, 0)
	l.count(c, d, w)
	if err != nil && err != syscall.EAGAIN {
		l.end(c)
		return w, false
	}
	return w, true
}

func (l *loop) count(c *lconn, d, n int) {
	if d == 0 {
		c.f.up += int64(n)
	} else {
		c.f.down += int64(n)
	}
	c.moved += int64(n)
}

// forget takes c's descriptors out of the loop; closing says they are
// closed next (which takes them out of the epoll set).
func (l *loop) forget(c *lconn, closing bool) {
	l.timer.clear(c)
	for _, fd := range []int{c.fd, c.ufd} {
		if fd >= 0 {
			if !closing {
				sysEpollCtl(l.ep, syscall.EPOLL_CTL_DEL, fd, &syscall.EpollEvent{})
			}
			l.conns[fd] = nil
		}
	}
	c.st = lsDone
	l.live--
	l.publish()
}

func (l *loop) closeUp(c *lconn) {
	sysEpollCtl(l.ep, syscall.EPOLL_CTL_DEL, c.ufd, &syscall.EpollEvent{})
	l.conns[c.ufd] = nil
	sysClose(c.ufd)
	c.ufd = -1
}

// end closes c's connections and ends its flow: the decision record, the
// metrics, the Server's count.
func (l *loop) end(c *lconn) {
	if c.st == lsDone {
		return
	}
	relaying := c.st == lsRelay
	l.forget(c, true)
	sysClose(c.fd)
	if c.ufd >= 0 {
		sysClose(c.ufd)
	}
	if relaying {
		l.s.m.Tunnels.Dec()
	}
	l.s.finish(c.f)
	l.s.wg.Done()
}

// handOff gives a connection that is not a CONNECT tunnel to the goroutine
// path, with the bytes read so far.
func (l *loop) handOff(c *lconn, pre []byte) {
	pre = bytes.Clone(pre)
	l.forget(c, false)
	tc, err := fileConn(c.fd)
	if err != nil {
		malformedHead(c.f, err)
		l.s.finish(c.f)
		l.s.wg.Done()
		return
	}
	l.s.trackConn(tc)
	go l.s.handleProxy(l.ctx, tc, pre, func() {
		l.s.untrack(tc)
		l.s.wg.Done()
	})
}

// bulk gives a busy tunnel to the relay engine, which splices.
func (l *loop) bulk(c *lconn) {
	c.keepAlive()
	l.forget(c, false)
	l.s.m.Tunnels.Dec() // startTunnel counts it again
	cc, err := fileConn(c.fd)
	var uc *net.TCPConn
	if err == nil {
		uc, err = fileConn(c.ufd)
		if err != nil {
			cc.Close()
		}
	} else {
		sysClose(c.ufd)
	}
	if err != nil {
		c.f.err = err
		l.s.finish(c.f)
		l.s.wg.Done()
		return
	}
	l.s.trackConn(cc)
	l.s.trackConn(uc)
	go l.s.startTunnel(c.f, cc, uc, func() {
		l.s.untrack(uc)
		l.s.untrack(cc)
		l.s.finish(c.f)
		l.s.wg.Done()
	})
}

// fileConn turns a descriptor into a *net.TCPConn (in Go's network
// poller); fd is closed either way.
func fileConn(fd int) (*net.TCPConn, error) {
	f := os.NewFile(uintptr(fd), "egress")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		nc.Close()
		return nil, errors.New("not a TCP connection")
	}
	return tc, nil
}

// expire ends the flows whose deadline passed: a head not read in time
// (400, as the goroutine path answers a read timeout), a connect not
// done in time (the next target, or the dial failed).
func (l *loop) expire(now time.Time) {
	l.resume(now)
	for {
		c := l.timer.due(now)
		if c == nil {
			return
		}
		switch c.st {
		case lsHead:
			l.answer(c, malformedHead(c.f, fmt.Errorf("read: %w", os.ErrDeadlineExceeded)))
		case lsConnect:
			c.errs = append(c.errs, fmt.Errorf("dialing %s: %w", c.dsts[c.next-1], os.ErrDeadlineExceeded))
			l.connectNext(c)
		case lsRelay:
			c.keepAlive()
		}
	}
}

// timers is a min-heap of connections by deadline.
type timers struct{ h timerHeap }

type timerHeap []*lconn

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].ti, h[j].ti = i, j
}
func (h *timerHeap) Push(x any) {
	c := x.(*lconn)
	c.ti = len(*h)
	*h = append(*h, c)
}
func (h *timerHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.ti = -1
	return c
}

func (t *timers) set(c *lconn, at time.Time) {
	c.deadline = at
	if c.ti >= 0 {
		heap.Fix(&t.h, c.ti)
		return
	}
	heap.Push(&t.h, c)
}

func (t *timers) clear(c *lconn) {
	if c.ti >= 0 {
		heap.Remove(&t.h, c.ti)
	}
}

func (t *timers) next() time.Time {
	if len(t.h) == 0 {
		return time.Time{}
	}
	return t.h[0].deadline
}

// due pops a connection whose deadline is not after now.
func (t *timers) due(now time.Time) *lconn {
	if len(t.h) == 0 || t.h[0].deadline.After(now) {
		return nil
	}
	return heap.Pop(&t.h).(*lconn)
}
