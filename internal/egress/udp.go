package egress

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
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
// gateway.udpIdleTimeout without a datagram either way, or when a new
// flow takes its place (udp_table.go), and its decision record is written
// then. A denied flow is recorded at once (once per client address and
// destination in gateway.udpDenyTimeout) and remembered as long, so a
// client's retries are dropped without a decision each; it holds no flow
// slot (udp_deny.go). Admission keeps one client from
// taking the table: at most gateway.udpMaxFlowsPerSource flows per client
// address, and a full table (gateway.udpMaxFlows) gives way from its
// heaviest source first.

// udpConfig is the gateway's UDP settings (Config.UDP*, defaults applied).
type udpConfig struct {
	idle      time.Duration
	denyFor   time.Duration
	maxFlows  int
	perSource int
}

func newUDPConfig(c *Config) udpConfig {
	u := udpConfig{
		idle:      cmp.Or(c.UDPIdleTimeout, DefaultUDPIdleTimeout),
		denyFor:   cmp.Or(c.UDPDenyTimeout, DefaultUDPDenyTimeout),
		maxFlows:  cmp.Or(c.UDPMaxFlows, DefaultUDPMaxFlows),
		perSource: c.UDPMaxFlowsPerSource,
	}
	if u.perSource <= 0 {
		u.perSource = DefaultUDPMaxFlowsPerSource(u.maxFlows)
	}
	u.perSource = min(u.perSource, u.maxFlows)
	return u
}

// udpBufSize holds any UDP payload (at most 65,535 - 8 bytes over IPv4,
// 65,535 over IPv6 without jumbograms), so a datagram is never cut.
const udpBufSize = 65536

// udpKey identifies a flow: the client and the destination it sent to
// (the original destination for L4, the DNAT listen address for DNAT).
type udpKey struct{ src, dst netip.AddrPort }

// udpFlow is one live flow of a udpTable.
type udpFlow struct {
	rec *flow
	// up is the connected socket to the upstream.
	up *net.UDPConn
	// reply sends datagrams to the client with the right source: the
	// transparent socket bound to the original destination (L4), or the
	// DNAT listener itself.
	reply    *net.UDPConn
	ownReply bool
	// evicted says why the flow was ended to make room for another
	// (source_limit, table_full); empty otherwise. Under udpTable.mu.
	evicted string
	// last is the time of the last datagram either way (Unix nanoseconds).
	last     atomic.Int64
	up1, dn1 atomic.Int64 // bytes relayed up and down
}

func (f *udpFlow) touch() { f.last.Store(time.Now().UnixNano()) }

// udpDecide decides a new flow (it fills f.decision and friends) and
// says whether it may go on: allowed, or would-deny in report mode.
type udpDecide func(f *flow) bool

// udpConnect opens the upstream socket and the reply socket (own: the
// flow closes it at its end) of a flow that may go on. A nil up means the
// flow is denied after all (f.decision and f.err say why); the caller
// writes its record.
type udpConnect func(f *flow) (up, reply *net.UDPConn, own bool)

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

// trackFlow counts a flow whose connections are not in s.conns (a UDP
// flow goroutine, an event-loop flow) in the server's wait group; false
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
// listener: it goes on an existing flow's upstream socket, opens a flow
// (perhaps in place of another, see admit), or is dropped and counted (a
// remembered deny, source_limit, table_full).
func (t *udpTable) datagram(k udpKey, p []byte) {
	now := time.Now()
	t.mu.Lock()
	uf := t.flows[k]
	denied := uf == nil && t.denied.has(k, now)
	t.mu.Unlock()
	switch {
	case uf != nil:
		t.send(uf, p)
		return
	case denied:
		t.s.m.UDPDropped.WithLabelValues(udpDropDenied).Inc()
		return
	}
	f := &flow{listener: t.listener, proto: policy.ProtoUDP, start: t.s.now(), src: k.src, dst: k.dst, port: k.dst.Port()}
	if !t.decide(f) {
		t.deny(k, f, len(p), now)
		return
	}
	// Room before sockets: a refused flow costs no socket.
	t.mu.Lock()
	vk, victim, why := t.admit(k.src.Addr(), now)
	if victim != nil {
		t.remove(vk, victim)
		victim.evicted = why
	}
	t.mu.Unlock()
	switch {
	case victim != nil:
		t.s.m.UDPEvicted.WithLabelValues(why).Inc()
		victim.up.Close() // its goroutine ends it and writes its record
	case why != "":
		t.s.m.UDPDropped.WithLabelValues(why).Inc()
		return
	}
	up, reply, own := t.connect(f)
	if up == nil {
		t.deny(k, f, len(p), now)
		return
	}
	if !t.s.trackFlow() {
		up.Close()
		if own {
			reply.Close()
		}
		return
	}
	uf = &udpFlow{rec: f, up: up, reply: reply, ownReply: own}
	uf.touch()
	t.mu.Lock()
	t.add(k, uf)
	t.mu.Unlock()
	t.s.m.UDPFlows.Inc()
	t.wg.Add(1)
	go t.relayDown(k, uf)
	t.send(uf, p)
}

// deny remembers a denied flow (n bytes came with its first datagram), so
// its retries are dropped without a decision each, and records it unless
// its client address and destination were recorded lately (udp_deny.go);
// an unrecorded deny is counted as a dropped datagram.
func (t *udpTable) deny(k udpKey, f *flow, n int, now time.Time) {
	f.up = int64(n)
	u := t.s.udp
	t.mu.Lock()
	t.denied.add(k, now, u.denyFor, u.maxFlows)
	record := t.records.record(k, now, u.denyFor, u.maxFlows, u.perSource)
	t.mu.Unlock()
	if !record {
		t.s.m.UDPDropped.WithLabelValues(udpDropDenied).Inc()
		return
	}
	t.s.finish(f)
}

// send relays p from the client to the flow's upstream.
func (t *udpTable) send(uf *udpFlow, p []byte) {
	uf.touch()
	n, err := uf.up.Write(p)
	if err != nil {
		t.s.m.UDPDropped.WithLabelValues(udpDropSend).Inc()
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
	t.remove(k, uf)
	evicted := uf.evicted
	t.mu.Unlock()
	uf.up.Close()
	if uf.ownReply {
		uf.reply.Close()
	}
	switch {
	case evicted != "":
		uf.rec.err = fmt.Errorf("udp flow ended to make room for a new one (%s)", evicted)
	case err != nil && !errors.Is(err, net.ErrClosed):
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
				t.s.m.UDPDropped.WithLabelValues(udpDropOversized).Inc()
				return true
			}
			uf.touch()
			m, werr := uf.reply.WriteToUDPAddrPort((*bp)[:n], k.src)
			if werr != nil {
				t.s.m.UDPDropped.WithLabelValues(udpDropSend).Inc()
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
// waits for them; remembered denies are forgotten.
func (t *udpTable) closeAll() {
	t.mu.Lock()
	for _, f := range t.flows {
		f.up.Close()
	}
	t.denied, t.records = udpMemory[udpKey]{}, udpDenyRecords{}
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
