package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/netclass"
	"github.com/airlockdev/airlock/internal/policy"
)

// Resolver turns a name into addresses. *net.Resolver implements it (the
// system resolver, /etc/hosts included); main wires airlock DNS in when it
// runs in the same process.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ Resolver = (*net.Resolver)(nil)

// CachedResolver is a Resolver that can answer from what it holds now
// without waiting (airlock DNS: its private zones and cache). The
// event-loop engine asks it first, and hands a resolution to a goroutine
// only when it is not held.
type CachedResolver interface {
	Resolver
	CachedNetIP(network, host string) ([]netip.Addr, bool)
}

// DenyError is returned by the Dialer when every address it could dial is
// refused by the gateway's own address checks; Reason is the policy reason
// code (internal_address, ipv6_disabled).
type DenyError struct {
	Reason policy.Reason
	Addr   netip.Addr // the first address refused
	Class  netclass.Class
}

func (e *DenyError) Error() string {
	return fmt.Sprintf("%s: %s (%s)", e.Reason, e.Addr, e.Class)
}

// Dialer is the gateway's one way out (STYLE 12): resolve-then-dial for
// names, classification of destination addresses, IPv6 gating, connect
// timeout, keepalives and the optional pool of source addresses. It is safe
// for concurrent use.
type Dialer struct {
	resolver  Resolver
	allowed   []netip.Prefix
	allowIPv6 bool
	timeout   time.Duration
	src4      []netip.Addr
	src6      []netip.Addr
	next      atomic.Uint64
}

// keepAlive configures TCP keepalives on upstream connections: a peer that
// vanished is noticed after about Idle + Count*Interval.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 15 * time.Second, Count: 4}

// NewDialer builds the Dialer from a validated Config (SetDefaults
// applied). r nil means the system resolver.
func NewDialer(cfg *Config, r Resolver) (*Dialer, error) {
	if r == nil {
		r = net.DefaultResolver
	}
	d := &Dialer{resolver: r, allowIPv6: cfg.AllowIPv6, timeout: cfg.DialTimeout}
	if d.timeout <= 0 {
		d.timeout = DefaultDialTimeout
	}
	d.allowed = cfg.AllowedInternalRanges.Prefixes()
	for _, s := range cfg.SourceAddresses {
		a, msg := parseSource(s)
		if msg != "" {
			return nil, fmt.Errorf("gateway.sourceAddresses: %s", msg)
		}
		if a.Is4() {
			d.src4 = append(d.src4, a)
		} else {
			d.src6 = append(d.src6, a)
		}
	}
	return d, nil
}

// Check returns the deny reason for dialling a (zero when it may be
// dialled) and a's class (netclass, shared with the DNS rebinding filter
// and the registry's upstream client). internal says whether the address
// came from a name (or an unruled flow) and so must be public or inside
// allowedInternalRanges; addresses a network rule matched skip that check.
// IPv6 is gated always.
func (d *Dialer) Check(a netip.Addr, internal bool) (policy.Reason, netclass.Class) {
	a = a.Unmap()
	c, ok := netclass.Allowed(a, d.allowed)
	if a.Is6() && !d.allowIPv6 {
		return policy.ReasonIPv6Disabled, c
	}
	if !internal || ok {
		return "", c
	}
	return policy.ReasonInternalAddress, c
}

// DialName resolves name and dials the first acceptable address on port,
// trying the next one when a connect fails. Resolution and connects share
// the dial timeout. The error is a *DenyError when every answer was
// refused by Check.
func (d *Dialer) DialName(ctx context.Context, name dnsname.Name, port uint16) (*net.TCPConn, netip.AddrPort, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	addrs, err := d.lookup(ctx, name)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	dsts, deny := d.targets(addrs, port)
	var errs []error
	for _, dst := range dsts {
		c, err := d.dial(ctx, dst)
		if err == nil {
			return c, dst, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, netip.AddrPort{}, noTarget(name, errs, deny)
}

// lookup resolves name. Both families are asked for, so a name with only
// IPv6 answers is refused as ipv6_disabled rather than reported as
// unresolvable.
func (d *Dialer) lookup(ctx context.Context, name dnsname.Name) ([]netip.Addr, error) {
	addrs, err := d.resolver.LookupNetIP(ctx, "ip", name.String())
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", name, err)
	}
	return addrs, nil
}

// targets are the destinations to try for a name's addresses, in order:
// those Check accepts. deny is the first refusal (nil when none).
func (d *Dialer) targets(addrs []netip.Addr, port uint16) (dsts []netip.AddrPort, deny *DenyError) {
	for _, a := range addrs {
		a = a.Unmap()
		if reason, class := d.Check(a, true); reason != "" {
			if deny == nil {
				deny = &DenyError{Reason: reason, Addr: a, Class: class}
			}
			continue
		}
		dsts = append(dsts, netip.AddrPortFrom(a, port))
	}
	return dsts, deny
}

// noTarget is DialName's error once no target connected: the connect
// errors, else the refusal, else "no address".
func noTarget(name dnsname.Name, errs []error, deny *DenyError) error {
	switch {
	case len(errs) > 0:
		return errors.Join(errs...)
	case deny != nil:
		return deny
	}
	return fmt.Errorf("resolving %s: no address", name)
}

// DialAddr dials dst after Check(dst, internal).
func (d *Dialer) DialAddr(ctx context.Context, dst netip.AddrPort, internal bool) (*net.TCPConn, error) {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if reason, class := d.Check(dst.Addr(), internal); reason != "" {
		return nil, &DenyError{Reason: reason, Addr: dst.Addr(), Class: class}
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.dial(ctx, dst)
}

func (d *Dialer) dial(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error) {
	nd := net.Dialer{KeepAliveConfig: keepAlive}
	if src := d.source(dst.Addr()); src.IsValid() {
		nd.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	c, err := nd.DialContext(ctx, "tcp", dst.String())
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", dst, err)
	}
	return c.(*net.TCPConn), nil
}

// source picks the next source address of dst's family, round-robin; the
// zero Addr when none is configured.
func (d *Dialer) source(dst netip.Addr) netip.Addr {
	pool := d.src4
	if dst.Is6() {
		pool = d.src6
	}
	if len(pool) == 0 {
		return netip.Addr{}
	}
	return pool[(d.next.Add(1)-1)%uint64(len(pool))]
}
