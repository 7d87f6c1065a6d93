// Package dnstest serves DNS for tests with github.com/miekg/dns: any
// handler on sockets the test made (on loopback or inside a network
// namespace), and Zone, a fake upstream answering from a map. Only tests
// import it.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Serve answers DNS with h on pc (UDP) and ln (TCP); either may be nil.
// It returns once both serve. They stop when the test ends, or earlier
// when stop is called (more than once is fine).
func Serve(t testing.TB, pc net.PacketConn, ln net.Listener, h dns.Handler) (stop func()) {
	t.Helper()
	var srvs []*dns.Server
	if pc != nil {
		srvs = append(srvs, &dns.Server{PacketConn: pc, Handler: h})
	}
	if ln != nil {
		srvs = append(srvs, &dns.Server{Listener: ln, Handler: h})
	}
	for _, s := range srvs {
		ready := make(chan struct{})
		s.NotifyStartedFunc = func() { close(ready) }
		go s.ActivateAndServe()
		<-ready
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			for _, s := range srvs {
				s.Shutdown()
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Listen opens UDP and TCP on one free port of 127.0.0.1; Serve (or the
// server under test) closes them.
func Listen(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	var lastErr error
	for range 10 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("dns listen tcp: %v", err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			return pc, ln
		}
		ln.Close()
		lastErr = err
	}
	t.Fatalf("dns listen udp: %v", lastErr)
	return nil, nil
}

// Zone is a fake upstream resolver on loopback, UDP and TCP on one port.
// Its zone maps "name./TYPE" (lower case) to records in zone-file syntax;
// a key not in it is NXDOMAIN with an SOA. Answers over UDP are truncated
// to the client's EDNS0 size (512 without EDNS0).
type Zone struct {
	Addr    string       // host:port
	Queries atomic.Int64 // queries answered so far

	mu   sync.Mutex
	zone map[string][]string
	stop func()
}

// NewZone serves zone until the test ends (or Stop). zone is kept, not
// copied; change it with Set.
func NewZone(t testing.TB, zone map[string][]string) *Zone {
	t.Helper()
	z := &Zone{zone: zone}
	pc, ln := Listen(t)
	z.Addr = pc.LocalAddr().String()
	z.stop = Serve(t, pc, ln, dns.HandlerFunc(z.serve))
	return z
}

// Set replaces the records of key ("name./TYPE").
func (z *Zone) Set(key string, rrs ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.zone[key] = rrs
}

// Stop stops serving: later queries time out.
func (z *Zone) Stop() { z.stop() }

func (z *Zone) serve(w dns.ResponseWriter, r *dns.Msg) {
	z.Queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	key := strings.ToLower(q.Name) + "/" + dns.Type(q.Qtype).String()
	z.mu.Lock()
	rrs, ok := z.zone[key]
	z.mu.Unlock()
	if !ok {
		m.Rcode = dns.RcodeNameError
		soa, _ := dns.NewRR("test. 600 IN SOA ns.test. h.test. 1 3600 600 86400 120")
		m.Ns = []dns.RR{soa}
	}
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			panic(fmt.Sprintf("bad test record %q: %v", s, err))
		}
		m.Answer = append(m.Answer, rr)
	}
	size := dns.MinMsgSize
	if o := r.IsEdns0(); o != nil {
		size = int(o.UDPSize())
		m.SetEdns0(o.UDPSize(), false)
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		m.Truncate(size)
	}
	w.WriteMsg(m)
}
