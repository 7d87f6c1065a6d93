package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// downFor is how long a failed forwarder is tried only after the others.
const downFor = 5 * time.Second

// upstreamUDPSize is the EDNS0 payload size advertised to forwarders and
// clients (the DNS Flag Day 2020 recommendation is 1232; 4096 is the
// brief's ceiling and what resolvers commonly send).
const upstreamUDPSize = 4096

// exchangeFunc sends m to addr over UDP or TCP and returns the reply.
type exchangeFunc func(ctx context.Context, m *dns.Msg, addr string, tcp bool) (*dns.Msg, error)

// errAllFailed is returned when no forwarder answered usefully.
var errAllFailed = errors.New("every forwarder failed")

// forwarders sends queries to the configured upstreams with failover. Safe
// for concurrent use.
type forwarders struct {
	addrs    []string
	timeout  time.Duration
	exchange exchangeFunc
	now      func() time.Time
	metrics  *Metrics

	mu        sync.Mutex
	downUntil []time.Time
}

func newForwarders(addrs []string, timeout time.Duration, ex exchangeFunc, now func() time.Time, m *Metrics) *forwarders {
	return &forwarders{addrs: addrs, timeout: timeout, exchange: ex, now: now, metrics: m, downUntil: make([]time.Time, len(addrs))}
}

// netExchange is the real exchangeFunc.
func netExchange(ctx context.Context, m *dns.Msg, addr string, tcp bool) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", UDPSize: upstreamUDPSize}
	if tcp {
		c.Net = "tcp"
	}
	r, _, err := c.ExchangeContext(ctx, m, addr)
	return r, err
}

// order returns the forwarder indexes to try: those not marked down, in
// configured order, then the ones marked down.
func (f *forwarders) order() []int {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	up := make([]int, 0, len(f.addrs))
	var down []int
	for i, t := range f.downUntil {
		if now.Before(t) {
			down = append(down, i)
		} else {
			up = append(up, i)
		}
	}
	return append(up, down...)
}

func (f *forwarders) mark(i int, failed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if failed {
		f.downUntil[i] = f.now().Add(downFor)
	} else {
		f.downUntil[i] = time.Time{}
	}
}

// resolve asks the forwarders for (name, qtype) until one gives an answer
// (NOERROR or NXDOMAIN). SERVFAIL, REFUSED, timeouts and replies that do not
// match the question count as failures and move on to the next forwarder.
func (f *forwarders) resolve(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	if len(f.addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no forwarders configured", name)
	}
	var errs []error
	for _, i := range f.order() {
		addr := f.addrs[i]
		start := time.Now()
		r, err := f.one(ctx, addr, name, qtype)
		result := "ok"
		if err != nil {
			result = "error"
			errs = append(errs, err)
		}
		f.metrics.ForwardDuration.WithLabelValues(result).Observe(time.Since(start).Seconds())
		f.mark(i, err != nil)
		if err == nil {
			return r, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("resolve %s: %w: %w", name, errAllFailed, errors.Join(errs...))
}

func (f *forwarders) one(ctx context.Context, addr, name string, qtype uint16) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.RecursionDesired = true
	q.SetEdns0(upstreamUDPSize, false)
	r, err := f.exchange(ctx, q, addr, false)
	if err == nil && r.Truncated {
		r, err = f.exchange(ctx, q, addr, true)
	}
	if err != nil {
		return nil, fmt.Errorf("forwarder %s: %w", addr, err)
	}
	if len(r.Question) != 1 || r.Question[0].Qtype != qtype || !strings.EqualFold(r.Question[0].Name, q.Question[0].Name) {
		return nil, fmt.Errorf("forwarder %s: reply does not match the question", addr)
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("forwarder %s: %s", addr, dns.RcodeToString[r.Rcode])
	}
	if r.Truncated {
		return nil, fmt.Errorf("forwarder %s: truncated reply over TCP", addr)
	}
	return r, nil
}
