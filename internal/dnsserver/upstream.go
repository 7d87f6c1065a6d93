package dnsserver

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// upstreamRotate is how many queries one upstream socket sends before it
// is retired for a fresh one (a new random source port): the pool saves a
// socket per query without keeping one source port for long.
const upstreamRotate = 1024

// upstreamRetransmit is how long a UDP query waits for its reply before it
// is sent again (same socket, same ID), until the forwarder timeout ends
// it: a datagram lost on the way costs this long, not a SERVFAIL after
// forwarderTimeout (2 s). The bench saw about one such loss in 60,000
// misses at 20,000 a second.
const upstreamRetransmit = 400 * time.Millisecond

// Sockets per forwarder: upstreamSlotsPerReader per dns.readers, at least
// minUpstreamSlots.
const (
	upstreamSlotsPerReader = 4
	minUpstreamSlots       = 8
)

// errUpstreamClosed is what queries in flight get when the pool is closed.
var errUpstreamClosed = errors.New("upstream socket closed")

// upstreamPool exchanges UDP queries with the forwarders over a few
// long-lived connected sockets per forwarder, matching replies to queries
// by ID (random, unique among the socket's queries in flight), instead of
// one socket per query: a socket costs socket, connect, a netpoller
// registration and close, more than the exchange itself. Each socket has
// one reader goroutine. Over TCP (the retry of a truncated reply) it dials
// per query as before. Safe for concurrent use; usable again after
// closeAll.
type upstreamPool struct {
	slots      int           // sockets per forwarder
	rotate     int           // queries per socket (upstreamRotate; tests lower it)
	retransmit time.Duration // upstreamRetransmit; tests lower it
	resent     prometheus.Counter
	next       atomic.Uint32

	mu    sync.Mutex
	conns map[string][]*upConn
}

// newUpstreamPool returns a pool of slots sockets per forwarder; resent
// counts retransmissions (nil: not counted).
func newUpstreamPool(slots int, resent prometheus.Counter) *upstreamPool {
	if resent == nil {
		resent = prometheus.NewCounter(prometheus.CounterOpts{Name: "unused"})
	}
	return &upstreamPool{slots: max(slots, 1), rotate: upstreamRotate, retransmit: upstreamRetransmit, resent: resent, conns: map[string][]*upConn{}}
}

// upConn is one connected UDP socket to one forwarder.
type upConn struct {
	conn *net.UDPConn

	mu      sync.Mutex
	pending map[uint16]upWait
	sent    int  // queries sent on it
	retired bool // no new queries; closed once none is pending
	closed  bool
	rng     *rand.ChaCha8
}

// upWait is a query waiting on a socket: where its reply goes, and its
// question section (name, type, class as sent), which the reply must echo.
type upWait struct {
	ch chan upReply
	q  []byte
}

type upReply struct {
	pkt []byte
	err error
}

func dialUpConn(addr string) (*upConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr) // an IP literal (Validate)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return nil, err
	}
	var seed [32]byte
	crand.Read(seed[:]) // never fails (crypto/rand)
	c := &upConn{conn: conn, pending: map[uint16]upWait{}, rng: rand.NewChaCha8(seed)}
	go c.read()
	return c, nil
}

// register takes a socket to addr that accepts a new query, replacing one
// that has sent p.rotate queries, and registers ch on it for a fresh ID,
// both under the pool's lock. Sockets are retired only under that lock, so
// the query is registered on a socket that is not retired, and a retired
// socket stays open until its last registered query has its reply or gives
// up. (Taking the socket and registering in two steps let a query land on
// a socket retired and closed in between: "upstream socket closed", a
// SERVFAIL.)
func (p *upstreamPool) register(addr string, w upWait) (*upConn, uint16, error) {
	i := int(p.next.Add(1)) % p.slots
	p.mu.Lock()
	defer p.mu.Unlock()
	cs := p.conns[addr]
	if cs == nil {
		cs = make([]*upConn, p.slots)
		p.conns[addr] = cs
	}
	c := cs[i]
	if c == nil || c.full(p.rotate) {
		nc, err := dialUpConn(addr)
		if err != nil {
			return nil, 0, err
		}
		if c != nil {
			c.retire()
		}
		c = nc
		cs[i] = c
	}
	id, err := c.register(w)
	return c, id, err
}

// exchange is the pool's exchangeFunc.
func (p *upstreamPool) exchange(ctx context.Context, m *dns.Msg, addr string, tcp bool) (*dns.Msg, error) {
	if tcp {
		return netExchange(ctx, m, addr, true)
	}
	pkt, err := m.Pack()
	if err != nil {
		return nil, err
	}
	q, ok := questionSection(pkt)
	if !ok {
		return nil, errors.New("upstream query without one question")
	}
	ch := make(chan upReply, 1)
	c, id, err := p.register(addr, upWait{ch: ch, q: q})
	if err != nil {
		return nil, err
	}
	defer c.unregister(id)
	m.Id = id
	binary.BigEndian.PutUint16(pkt, id)
	if _, err := c.conn.Write(pkt); err != nil {
		return nil, err
	}
	again := time.NewTimer(p.retransmit)
	defer again.Stop()
	for {
		select {
		case r := <-ch:
			if r.err != nil {
				return nil, r.err
			}
			reply := new(dns.Msg)
			if err := reply.Unpack(r.pkt); err != nil {
				return nil, err
			}
			return reply, nil
		case <-again.C:
			// A failed resend is no answer: the reply may have come in the
			// meantime (then the socket may be closed, and the reply waits
			// in ch), or a closing socket fails the query through ch, or
			// the context ends it.
			p.resent.Inc()
			if _, err := c.conn.Write(pkt); err == nil {
				again.Reset(p.retransmit)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// closeAll closes every socket; queries in flight fail. New queries open
// new sockets.
func (p *upstreamPool) closeAll() {
	p.mu.Lock()
	all := p.conns
	p.conns = map[string][]*upConn{}
	p.mu.Unlock()
	for _, cs := range all {
		for _, c := range cs {
			if c != nil {
				c.close(errUpstreamClosed)
			}
		}
	}
}

// open counts the sockets not closed yet, for tests.
func (p *upstreamPool) open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, cs := range p.conns {
		for _, c := range cs {
			if c != nil {
				n++
			}
		}
	}
	return n
}

func (c *upConn) full(rotate int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent >= rotate || c.closed
}

// register picks a random ID free on this socket for the query whose
// reply goes to ch.
func (c *upConn) register(w upWait) (uint16, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, errUpstreamClosed
	}
	for {
		id := uint16(c.rng.Uint64())
		if _, taken := c.pending[id]; !taken {
			c.pending[id] = w
			c.sent++
			return id, nil
		}
	}
}

// unregister forgets id (answered or given up) and closes a retired
// socket nobody waits on any more.
func (c *upConn) unregister(id uint16) {
	c.mu.Lock()
	delete(c.pending, id)
	done := c.retired && len(c.pending) == 0 && !c.closed
	c.mu.Unlock()
	if done {
		c.close(nil)
	}
}

func (c *upConn) retire() {
	c.mu.Lock()
	c.retired = true
	done := len(c.pending) == 0 && !c.closed
	c.mu.Unlock()
	if done {
		c.close(nil)
	}
}

// close closes the socket and fails the queries still waiting with err.
func (c *upConn) close(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	waiting := c.pending
	c.pending = map[uint16]upWait{}
	c.mu.Unlock()
	c.conn.Close()
	for _, w := range waiting {
		w.ch <- upReply{err: err}
	}
}

// read hands each reply to the query waiting on its ID; replies nobody
// waits for (late, duplicated or forged) are dropped. A read error other
// than the socket's closing (ECONNREFUSED: the forwarder's port is closed)
// fails every query waiting, so that failover does not wait for the
// timeout.
func (c *upConn) read() {
	buf := make([]byte, 65535)
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.failAll(fmt.Errorf("read from forwarder: %w", err))
			continue
		}
		if n < 12 {
			continue
		}
		id := binary.BigEndian.Uint16(buf)
		c.mu.Lock()
		w, ok := c.pending[id]
		if ok && sameQuestion(buf[:n], w.q) {
			delete(c.pending, id)
		} else {
			ok = false // not the reply to the query now waiting on this ID
		}
		c.mu.Unlock()
		if ok {
			w.ch <- upReply{pkt: append([]byte(nil), buf[:n]...)}
		}
	}
}

func (c *upConn) failAll(err error) {
	c.mu.Lock()
	waiting := c.pending
	c.pending = map[uint16]upWait{}
	done := c.retired && !c.closed
	c.mu.Unlock()
	for _, w := range waiting {
		w.ch <- upReply{err: err}
	}
	if done {
		c.close(nil)
	}
}

// questionSection returns the question section of pkt, a packed query with
// one question (name uncompressed, type, class).
func questionSection(pkt []byte) ([]byte, bool) {
	if len(pkt) < 12 || binary.BigEndian.Uint16(pkt[4:]) != 1 {
		return nil, false
	}
	off := 12
	for off < len(pkt) && pkt[off] != 0 {
		if pkt[off]&0xC0 != 0 {
			return nil, false
		}
		off += 1 + int(pkt[off])
	}
	end := off + 5
	if end > len(pkt) {
		return nil, false
	}
	return pkt[12:end], true
}

// sameQuestion reports whether the reply pkt echoes the question section q
// (the name compared without ASCII case, as forwarders may change it). A
// reply that does not is left for the query it belongs to: a retransmitted
// query may get two replies, and the late one must not answer a newer query
// that took the same ID on the socket.
func sameQuestion(pkt, q []byte) bool {
	if len(pkt) < 12+len(q) || binary.BigEndian.Uint16(pkt[4:]) != 1 {
		return false
	}
	got := pkt[12 : 12+len(q)]
	name := len(q) - 4
	for i := range name {
		a, b := got[i], q[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return string(got[name:]) == string(q[name:])
}
