//go:build e2e

package e2e

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// throttleProxy is a TCP proxy on loopback that forwards to target and
// limits what flows back (target → client) to rate bytes per second per
// connection, like a slow link to the upstream registry. It records when
// it last forwarded a byte back, so tests can tell when the upstream
// finished sending.
type throttleProxy struct {
	ln        net.Listener
	addr      string
	target    string
	rate      atomic.Int64 // bytes/s per connection towards the client; 0 = unlimited
	lastWrite atomic.Int64 // UnixNano of the last byte forwarded towards the client
	forwarded atomic.Int64 // bytes forwarded towards the client
	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

func startThrottleProxy(t testing.TB, target string, rate int64) *throttleProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("throttle proxy: %v", err)
	}
	p := &throttleProxy{ln: ln, addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.rate.Store(rate)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *throttleProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, u) {
			return
		}
		p.wg.Add(2)
		go func() { // client → target: unthrottled
			defer p.wg.Done()
			io.Copy(u, c)
			if tc, ok := u.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
		}()
		go func() { // target → client: throttled
			defer p.wg.Done()
			p.pace(c, u)
			c.Close()
			u.Close()
			p.untrack(c, u)
		}()
	}
}

// pace copies src to dst in small chunks, sleeping so that the average
// stays at the current rate.
func (p *throttleProxy) pace(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	next := time.Now()
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			p.forwarded.Add(int64(n))
			p.lastWrite.Store(time.Now().UnixNano())
			if r := p.rate.Load(); r > 0 {
				// Sleeps overshoot a little; keep that credit unless the
				// link sat idle (then start a new burst-free schedule).
				if now := time.Now(); now.Sub(next) > 50*time.Millisecond {
					next = now
				}
				next = next.Add(time.Duration(int64(n) * int64(time.Second) / r))
				time.Sleep(time.Until(next))
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *throttleProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *throttleProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

// close stops accepting, closes every connection and waits for the copiers.
func (p *throttleProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// lastWriteTime is when the proxy last forwarded a byte to airlock.
func (p *throttleProxy) lastWriteTime() time.Time { return time.Unix(0, p.lastWrite.Load()) }
