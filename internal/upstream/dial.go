package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/airlockdev/airlock/internal/netclass"
)

// Resolver turns a host name into addresses. *net.Resolver implements it
// (the system resolver, the default); tests pass a map.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ Resolver = (*net.Resolver)(nil)

// AddrError is the error of a connection the address check refused:
// Addr is not public in airlock's address classification (netclass), Host
// is no configured endpoint and no allowed range holds Addr.
type AddrError struct {
	Host  string // host:port as the URL named it
	Addr  netip.Addr
	Class netclass.Class
}

func (e *AddrError) Error() string {
	return fmt.Sprintf("refusing to connect to %s (%s, %s): only a configured upstream endpoint or registry.upstreamAllowedInternalRanges may be internal", e.Host, e.Addr, e.Class)
}

// guard is the one way the Client connects (every endpoint, redirect and
// token realm): it resolves the host itself, checks each address with
// netclass and hands the raw dialer an IP literal, so the address checked
// is the address dialled and a name that changes its answer in between
// (DNS rebinding) gains nothing. A host:port that is a configured
// endpoint (registry.upstreams) may be any address; every other one must
// be public or inside an allowed range.
type guard struct {
	resolver Resolver
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	trusted  map[string]bool // canonical host:port of the configured endpoints
	allowed  []netip.Prefix
}

// trust records u's host:port (default port by scheme) as a configured
// endpoint.
func (g *guard) trust(u *url.URL) {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	g.trusted[canonicalHostPort(u.Hostname(), port)] = true
}

// canonicalHostPort lowercases a name and normalizes an IP literal, so
// that the configured endpoint and the transport's dial address compare
// equal however each was written.
func canonicalHostPort(host, port string) string {
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.String()
	}
	return net.JoinHostPort(strings.ToLower(host), port)
}

// DialContext is the transport's dialer.
func (g *guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dialing %q: %w", addr, err)
	}
	trusted := g.trusted[canonicalHostPort(host, port)]
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = g.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("resolving %s: %w", host, err)
		}
	}
	var refused *AddrError
	var errs []error
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if class, ok := netclass.Allowed(a, g.allowed); !ok && !trusted {
			if refused == nil {
				refused = &AddrError{Host: addr, Addr: a, Class: class}
			}
			continue
		}
		c, err := g.dial(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	switch {
	case len(errs) > 0:
		return nil, errors.Join(errs...)
	case refused != nil:
		return nil, refused
	}
	return nil, fmt.Errorf("resolving %s: no address", host)
}
