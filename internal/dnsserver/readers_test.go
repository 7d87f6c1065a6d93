package dnsserver

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestReadersServeAndShutdown: with dns.readers 3, three UDP sockets share
// the port (SO_REUSEPORT); queries from many client ports reach every one
// of them and are answered (misses forwarded over the upstream pool, then
// hits on each reader's fast path); Shutdown closes all three, so the port
// can be bound again without SO_REUSEPORT.
func TestReadersServeAndShutdown(t *testing.T) {
	cfg := defaults(rawUpstream(t))
	cfg.AllowNames = []string{"*.bench.test"}
	cfg.Listen = "127.0.0.1:0"
	cfg.Readers = 3
	srv, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr().String()
	srv.mu.Lock()
	fronts := append([]*udpFront(nil), srv.fronts...)
	srv.mu.Unlock()
	if len(fronts) != 3 {
		t.Fatalf("%d UDP readers, want 3", len(fronts))
	}
	// 64 client sockets, each its own source port: the kernel hashes them
	// over the three sockets; each asks a miss, then the same name again.
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &dns.Client{Timeout: 5 * time.Second}
			conn, err := c.Dial(addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			for range 2 {
				m := new(dns.Msg)
				m.SetQuestion(fmt.Sprintf("n%d.bench.test.", i), dns.TypeA)
				r, _, err := c.ExchangeWithConn(m, conn)
				if err != nil {
					t.Error(err)
					return
				}
				if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
					t.Errorf("n%d: rcode %s, %d answers", i, dns.RcodeToString[r.Rcode], len(r.Answer))
				}
			}
		}()
	}
	wg.Wait()
	for i, f := range fronts {
		if f.reads.Load() == 0 {
			t.Errorf("reader %d read nothing", i)
		}
	}
	if n := srv.upstream.open(); n == 0 || n > 12 {
		t.Errorf("%d upstream sockets, want 1..12 (four pool slots per reader)", n)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := srv.upstream.open(); n != 0 {
		t.Errorf("%d upstream sockets open after Shutdown", n)
	}
	pc, err := net.ListenPacket("udp", addr) // no SO_REUSEPORT: fails while any reader's socket is open
	if err != nil {
		t.Fatalf("port still bound after Shutdown: %v", err)
	}
	pc.Close()
}

// TestUpstreamPoolRotates: a socket is replaced after upstreamRotate
// queries, and the retired one closes (its reader ends) once no query
// waits on it.
func TestUpstreamPoolRotates(t *testing.T) {
	up := rawUpstream(t)
	p := newUpstreamPool(1, nil)
	defer p.closeAll()
	var first *upConn
	for i := range upstreamRotate + 1 {
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("r%d.bench.test.", i), dns.TypeA)
		r, err := p.exchange(context.Background(), m, up, false)
		if err != nil {
			t.Fatal(err)
		}
		if r.Id != m.Id || len(r.Answer) != 1 {
			t.Fatalf("reply %d: id %d want %d, %d answers", i, r.Id, m.Id, len(r.Answer))
		}
		if i == 0 {
			p.mu.Lock()
			first = p.conns[up][0]
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	cur := p.conns[up][0]
	p.mu.Unlock()
	if cur == first {
		t.Fatal("socket not rotated")
	}
	first.mu.Lock()
	closed := first.closed
	first.mu.Unlock()
	if !closed {
		t.Error("retired socket not closed")
	}
}

// TestUpstreamPoolRefused: a forwarder whose port is closed fails the
// query without waiting for the timeout (ECONNREFUSED on the connected
// socket) — bounded here only by a generous context.
func TestUpstreamPoolRefused(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	p := newUpstreamPool(1, nil)
	defer p.closeAll()
	m := new(dns.Msg)
	m.SetQuestion("x.bench.test.", dns.TypeA)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := p.exchange(ctx, m, dead, false); err == nil {
		t.Fatal("exchange with a closed port succeeded")
	}
	if ctx.Err() != nil {
		t.Fatal("exchange waited for the context instead of failing on ECONNREFUSED")
	}
}

// TestUpstreamPoolRotationRace: queries racing with the replacement of
// their socket never fail. (A query used to take a socket from the pool,
// then register on it: in between, the socket could fill up, be retired and,
// its last reply in, be closed, and the query failed with "upstream socket
// closed": a SERVFAIL, and its forwarder marked down for 5 s.)
func TestUpstreamPoolRotationRace(t *testing.T) {
	up := rawUpstream(t)
	p := newUpstreamPool(1, nil)
	p.rotate = 2 // a new socket every second query: the race at every turn
	defer p.closeAll()
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				m := new(dns.Msg)
				m.SetQuestion(fmt.Sprintf("r%d.g%d.bench.test.", i, g), dns.TypeA)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_, err := p.exchange(ctx, m, up, false)
				cancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of 4800 exchanges failed, first: %v", n, firstErr.Load())
	}
}

// TestUpstreamRetransmit: a forwarder that drops the first copy of every
// query still answers each (the query is sent again on the same socket with
// the same ID before the timeout), and every retransmission is counted.
func TestUpstreamRetransmit(t *testing.T) {
	seen := map[string]bool{}
	addr := scriptedUpstream(t, func(q *dns.Msg) []*dns.Msg {
		name := q.Question[0].Name
		if !seen[name] {
			seen[name] = true // lost on the way
			return nil
		}
		r := new(dns.Msg)
		r.SetReply(q)
		rr, _ := dns.NewRR(name + " 60 IN A 192.0.2.7")
		r.Answer = []dns.RR{rr}
		return []*dns.Msg{r}
	})
	resent := prometheus.NewCounter(prometheus.CounterOpts{Name: "resent"})
	p := newUpstreamPool(2, resent)
	p.retransmit = 20 * time.Millisecond // not a bound on anything: only to keep the test short
	defer p.closeAll()
	for i := range 5 {
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("lost%d.bench.test.", i), dns.TypeA)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		r, err := p.exchange(ctx, m, addr, false)
		cancel()
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		if len(r.Answer) != 1 {
			t.Fatalf("query %d: %d answers, want 1", i, len(r.Answer))
		}
	}
	if n := testutil.ToFloat64(resent); n < 5 {
		t.Errorf("retransmissions counted: %v, want ≥ 5", n)
	}
}

// TestUpstreamReplyMustEchoQuestion: a reply with the right ID but another
// question (a late reply to a retransmitted query whose ID a newer query
// took) is not taken for the answer; the real reply that follows is.
func TestUpstreamReplyMustEchoQuestion(t *testing.T) {
	addr := scriptedUpstream(t, func(q *dns.Msg) []*dns.Msg {
		var out []*dns.Msg
		for _, name := range []string{"other.bench.test.", q.Question[0].Name} {
			r := new(dns.Msg)
			r.SetQuestion(name, dns.TypeA)
			r.Id, r.Response = q.Id, true
			rr, _ := dns.NewRR(name + " 60 IN A 192.0.2.8")
			r.Answer = []dns.RR{rr}
			out = append(out, r)
		}
		return out
	})
	p := newUpstreamPool(1, nil)
	defer p.closeAll()
	for i := range 5 {
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("Mixed%d.Bench.test.", i), dns.TypeA)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		r, err := p.exchange(ctx, m, addr, false)
		cancel()
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		if got := r.Question[0].Name; got != m.Question[0].Name {
			t.Fatalf("query %d answered with the reply to %s", i, got)
		}
	}
}

// scriptedUpstream is a forwarder on loopback UDP that hands every query it
// can decode to reply (from one goroutine) and sends what reply returns,
// in order: nothing for a lost query, several for stray replies. It
// returns its address.
func scriptedUpstream(t *testing.T, reply func(q *dns.Msg) []*dns.Msg) string {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, ap, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil || len(q.Question) == 0 {
				continue
			}
			for _, r := range reply(q) {
				b, _ := r.Pack()
				_, _ = pc.WriteToUDPAddrPort(b, ap)
			}
		}
	}()
	return pc.LocalAddr().String()
}
