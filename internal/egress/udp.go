package egress

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airlockdev/airlock/internal/policy"
)

// UDP flows. UDP has no connections, so the gateway makes flows: the
// first datagram of a (client source, destination) pair decides it once
// with the policy and opens a connected socket to the upstream; later
// datagrams of the pair are sent on that socket, and a goroutine per flow
// relays the upstream's replies back. A flow ends after
// gateway.udpIdleTimeout without a datagram either way, and its decision
// record is written then. A denied flow is recorded at once and
// remembered for the idle timeout, so a client's retries are dropped
// without a record each; the memory of both kinds of flow is bounded by
// gateway.udpMaxFlows per listener.

// udpConfig is the gateway's UDP settings (Config.UDPIdleTimeout,
// Config.UDPMaxFlows, defaults applied).
type udpConfig struct {
	idle     time.Duration
	maxFlows int
}

// udpBufSize holds any UDP payload (at most 65,535 - 8 bytes over IPv4,
// 65,535 over IPv6 without jumbograms), so a datagram is never cut.
const udpBufSize = 65536

// udpKey identifies a flow: the client and the destination it sent to
// (the original destination for L4, the DNAT listen address for DNAT).
type udpKey struct{ src, dst netip.AddrPort }

// udpFlow is one live or remembered flow of a udpTable.
type udpFlow struct {
	rec *flow
	// up is the connected socket to the upstream; nil for a remembered
	// deny (or a flow whose upstream could not be opened).
	up *net.UDPConn
	// reply sends datagrams to the client with the right source: the
	// transparent socket bound to the original destination (L4), or the
	// DNAT listener itself.
	reply    *net.UDPConn
	ownReply bool
	// expires is when a remembered deny is forgotten (under udpTable.mu).
	expires time.Time
	// last is the time of the last datagram either way (Unix nanoseconds).
	last     atomic.Int64
	up1, dn1 atomic.Int64 // bytes relayed up and down
}

func (f *udpFlow) touch() { f.last.Store(time.Now().UnixNano()) }

// udpOpen decides a new flow (it fills f.decision and friends) and, when
// the flow may go on, returns the upstream socket and the reply socket
// (own: the flow closes it at its end). A nil up means the flow is
// remembered as denied; the caller writes its record.
type udpOpen func(f *flow) (up, reply *net.UDPConn, own bool)

// udpTable is the flows of one UDP listener. Only the listener's
// goroutine adds flows; a flow's goroutine removes it.
type udpTable struct {
	s        *Server
	listener string
	open     udpOpen
	bufs     sync.Pool // *[]byte of udpBufSize, for flows' reads

	mu        sync.Mutex
	flows     map[udpKey]*udpFlow
	lastSweep time.Time
	wg        sync.WaitGroup // flow goroutines
}

func (s *Server) newUDPTable(listener string, open udpOpen) *udpTable {
	t := &udpTable{s: s, listener: listener, open: open, flows: make(map[udpKey]*udpFlow)}
	t.bufs.New = func() any { b := make([]byte, udpBufSize); return &b }
	return t
}

// udpListener lets Shutdown close a UDP socket with the TCP listeners.
type udpListener struct{ pc *net.UDPConn }

func (l udpListener) Accept() (net.Conn, error) { return nil, errors.New("udp: no accept") }
func (l udpListener) Close() error              { return l.pc.Close() }
func (l udpListener) Addr() net.Addr            { return l.pc.LocalAddr() }

// register adds pc to the listeners Shutdown closes; false once Shutdown
// began.
func (s *Server) registerUDP(pc *net.UDPConn) (func(), bool) {
	l := udpListener{pc}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, false
	}
	s.listeners[l] = struct{}{}
	return func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}, true
}

// trackFlow counts a UDP flow goroutine in the server's wait group; false
// once Shutdown began.
func (s *Server) trackFlow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	return true
}

// datagram handles one datagram p from k.src to k.dst that arrived on the
// listener: it goes on an existing flow's upstream socket, opens a flow,
// or is dropped (a remembered deny, the flow limit).
func (t *udpTable) datagram(k udpKey, p []byte) {
	now := time.Now()
	t.mu.Lock()
	uf := t.flows[k]
	if uf != nil && uf.up == nil && now.After(uf.expires) {
		delete(t.flows, k) // the deny is forgotten: decide again
		uf = nil
	}
	full := uf == nil && !t.room(now)
	t.mu.Unlock()
	switch {
	case uf != nil && uf.up == nil:
		t.s.m.UDPDropped.WithLabelValues("denied").Inc()
		return
	case uf != nil:
		t.send(uf, p)
		return
	case full:
		t.s.m.UDPDropped.WithLabelValues("flow_limit").Inc()
		return
	}
	f := &flow{listener: t.listener, proto: policy.ProtoUDP, start: t.s.now(), src: k.src, dst: k.dst, port: k.dst.Port()}
	up, reply, own := t.open(f)
	uf = &udpFlow{rec: f, up: up, reply: reply, ownReply: own}
	uf.touch()
	if up != nil && !t.s.trackFlow() {
		up.Close()
		if own {
			reply.Close()
		}
		return
	}
	if up == nil {
		// Denied (or not openable): one record now, retries dropped.
		f.up = int64(len(p))
		uf.expires = now.Add(t.s.udp.idle)
		t.mu.Lock()
		t.flows[k] = uf
		t.mu.Unlock()
		t.s.finish(f)
		return
	}
	t.mu.Lock()
	t.flows[k] = uf
	t.mu.Unlock()
	t.s.m.UDPFlows.Inc()
	t.wg.Add(1)
	go t.relayDown(k, uf)
	t.send(uf, p)
}

// room says whether one more flow fits, forgetting expired denies (at
// most once a second) when the table is full. Called with t.mu held.
func (t *udpTable) room(now time.Time) bool {
	if len(t.flows) < t.s.udp.maxFlows {
		return true
	}
	if now.Sub(t.lastSweep) < time.Second {
		return false
	}
	t.lastSweep = now
	for k, f := range t.flows {
		if f.up == nil && now.After(f.expires) {
			delete(t.flows, k)
		}
	}
	return len(t.flows) < t.s.udp.maxFlows
}

// send relays p from the client to the flow's upstream.
func (t *udpTable) send(uf *udpFlow, p []byte) {
	uf.touch()
	n, err := uf.up.Write(p)
	if err != nil {
		t.s.m.UDPDropped.WithLabelValues("send").Inc()
		return
	}
	uf.up1.Add(int64(n))
}

// relayDown relays the upstream's datagrams to the client until the flow
// is idle for the idle timeout or its socket is closed, then ends the
// flow: it leaves the table, its sockets close and its record is written.
func (t *udpTable) relayDown(k udpKey, uf *udpFlow) {
	defer t.wg.Done()
	defer t.s.wg.Done()
	rc, err := uf.up.SyscallConn()
	if err == nil {
		err = t.readLoop(k, uf, rc)
	}
	t.mu.Lock()
	if t.flows[k] == uf {
		delete(t.flows, k)
	}
	t.mu.Unlock()
	uf.up.Close()
	if uf.ownReply {
		uf.reply.Close()
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		uf.rec.err = err
	}
	uf.rec.up, uf.rec.down = uf.up1.Load(), uf.dn1.Load()
	t.s.m.UDPFlows.Dec()
	t.s.finish(uf.rec)
}

// readLoop reads replies with a buffer taken from the pool only once a
// datagram is waiting, so an idle flow holds no buffer. It returns nil
// when the flow went idle.
func (t *udpTable) readLoop(k udpKey, uf *udpFlow, rc syscall.RawConn) error {
	idle := t.s.udp.idle
	for {
		deadline := time.Unix(0, uf.last.Load()).Add(idle)
		if !time.Now().Before(deadline) {
			return nil
		}
		if err := uf.up.SetReadDeadline(deadline); err != nil {
			return err
		}
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			bp := t.bufs.Get().(*[]byte)
			defer t.bufs.Put(bp)
			n, _, e := unix.Recvfrom(int(fd), *bp, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
			switch {
			case e == unix.EAGAIN || e == unix.EINTR:
				return false // wait for readiness again
			case e == unix.ECONNREFUSED:
				// An ICMP port unreachable from the upstream: UDP carries
				// on (the client retries or goes idle).
				return true
			case e != nil:
				rerr = e
				return true
			case n > len(*bp):
				t.s.m.UDPDropped.WithLabelValues("oversized").Inc()
				return true
			}
			uf.touch()
			m, werr := uf.reply.WriteToUDPAddrPort((*bp)[:n], k.src)
			if werr != nil {
				t.s.m.UDPDropped.WithLabelValues("send").Inc()
				return true
			}
			uf.dn1.Add(int64(m))
			return true
		})
		switch {
		case isTimeout(err):
			continue // re-check the idle deadline: the client may have sent
		case err != nil:
			return err
		case rerr != nil:
			return rerr
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// closeAll ends every live flow (their goroutines write the records) and
// waits for them; remembered denies are dropped.
func (t *udpTable) closeAll() {
	t.mu.Lock()
	for k, f := range t.flows {
		if f.up != nil {
			f.up.Close()
		} else {
			delete(t.flows, k)
		}
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// udpAddrPort is a's address and port, IPv4-mapped addresses unmapped.
func udpAddrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// dialUDPFor opens the upstream socket of a decided flow to dst, as
// dialFor does for TCP: a report-mode flow (not allowed by a rule) passes
// the internal-address check first, and a refusal by the dialer's checks
// turns the decision into a deny.
func (s *Server) dialUDPFor(f *flow, dst netip.AddrPort) *net.UDPConn {
	f.upstream = dst
	c, err := s.dialer.DialUDP(dst, !f.decision.Allowed())
	if err == nil {
		return c
	}
	f.dialFailed(err)
	return nil
}
