package dnsserver

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// udpFront owns the UDP socket. One goroutine reads it: a query the fast
// path holds an answer for (replay) is answered on that goroutine, with no
// dns.Msg, no allocation and no goroutine per query; every other packet
// goes, with its client's address, through pc (a net.PacketConn backed by
// a channel) to the miekg/dns server, which decodes it, rejects what it
// rejects and calls ServeDNS as it would on the socket itself.
type udpFront struct {
	s    *Server
	conn *net.UDPConn
	// pktinfo: the socket is bound to a wildcard address, so answers carry
	// the address each query was sent to as their source (IP_PKTINFO), as
	// miekg/dns does.
	pktinfo bool
	pc      *frontConn
	reads   atomic.Uint64 // datagrams read, for tests
}

// peerAddr is the client address miekg/dns sees for a packet relayed by
// the front: where to answer (with the source address to use), and the
// query's fast-path key so that ServeDNS can store its answer.
type peerAddr struct {
	ap  netip.AddrPort
	oob []byte // control message setting the answer's source address
	key []byte // fastKey of the query; nil when it has another shape
}

func (a *peerAddr) Network() string { return "udp" }
func (a *peerAddr) String() string  { return a.ap.String() }

type relayed struct {
	pkt  []byte
	addr *peerAddr
}

func newUDPFront(s *Server, conn *net.UDPConn) (*udpFront, error) {
	f := &udpFront{s: s, conn: conn}
	if la, ok := conn.LocalAddr().(*net.UDPAddr); ok && la.IP.IsUnspecified() {
		if err := enablePktinfo(conn); err != nil {
			return nil, err
		}
		f.pktinfo = true
	}
	f.pc = &frontConn{f: f, in: make(chan relayed, 256), closed: make(chan struct{}), woken: make(chan struct{})}
	return f, nil
}

// serveOne handles one datagram from ap (with its control messages oob):
// it returns the answer (built in out) and the control message to send it
// with when the fast path holds one, else relays a copy of pkt to the
// miekg/dns server and returns nil. key is scratch space. It returns
// false when the front is closed.
func (f *udpFront) serveOne(pkt []byte, ap netip.AddrPort, oob, out []byte, key *[]byte) (ans, reply []byte, open bool) {
	f.reads.Add(1)
	src := ap.Addr().Unmap()
	k, ok := fastKey((*key)[:0], src, pkt)
	*key = k
	if f.pktinfo {
		reply = replyOOB(oob)
	}
	if ok {
		if ans := f.s.replay(out, k, src, pkt); ans != nil {
			return ans, reply, true
		}
	}
	addr := &peerAddr{ap: ap, oob: reply}
	if ok {
		addr.key = append([]byte(nil), k...)
	}
	select {
	case f.pc.in <- relayed{pkt: append([]byte(nil), pkt...), addr: addr}:
		return nil, nil, true
	case <-f.pc.closed:
		return nil, nil, false
	}
}

// readError reports whether the reader should go on after err.
func readError(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		time.Sleep(10 * time.Millisecond) // e.g. ENOBUFS; never spin
	}
	return true
}

// runSimple reads and answers one datagram at a time.
func (f *udpFront) runSimple() {
	buf := make([]byte, upstreamUDPSize+1)
	oob := make([]byte, 128)
	out := make([]byte, 0, upstreamUDPSize)
	var key []byte
	for {
		n, oobn, _, ap, err := f.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if !readError(err) {
				return
			}
			continue
		}
		ans, reply, open := f.serveOne(buf[:n], ap, oob[:oobn], out, &key)
		if !open {
			return
		}
		if ans != nil {
			if reply == nil {
				_, _ = f.conn.WriteToUDPAddrPort(ans, ap) // the client may be gone
			} else {
				_, _, _ = f.conn.WriteMsgUDPAddrPort(ans, reply, ap)
			}
		}
	}
}

// frontConn is the net.PacketConn the miekg/dns server reads relayed
// packets from and writes answers to (on the socket).
type frontConn struct {
	f      *udpFront
	in     chan relayed
	mu     sync.Mutex
	closed chan struct{} // closed by Close
	woken  chan struct{} // closed by a read deadline in the past
}

var _ net.PacketConn = (*frontConn)(nil)

func (c *frontConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.mu.Lock()
	woken := c.woken
	c.mu.Unlock()
	select {
	case r := <-c.in:
		return copy(b, r.pkt), r.addr, nil
	case <-woken:
		return 0, nil, os.ErrDeadlineExceeded
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *frontConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	p, ok := addr.(*peerAddr)
	if !ok {
		return 0, errors.New("dns write: not a relayed address")
	}
	n, _, err := c.f.conn.WriteMsgUDPAddrPort(b, p.oob, p.ap)
	return n, err
}

// Close closes the socket, which ends the reader.
func (c *frontConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.closed:
		return nil
	default:
	}
	close(c.closed)
	return c.f.conn.Close()
}

func (c *frontConn) LocalAddr() net.Addr { return c.f.conn.LocalAddr() }

// SetReadDeadline wakes a blocked ReadFrom when t is in the past (that is
// how miekg/dns stops its read loop); a future deadline is not needed, the
// reads simply wait for the next packet.
func (c *frontConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.IsZero() && !t.After(time.Now()) {
		select {
		case <-c.woken:
		default:
			close(c.woken)
		}
	} else {
		select {
		case <-c.woken:
			c.woken = make(chan struct{})
		default:
		}
	}
	return nil
}

func (c *frontConn) SetDeadline(t time.Time) error      { return c.SetReadDeadline(t) }
func (c *frontConn) SetWriteDeadline(t time.Time) error { return nil }
