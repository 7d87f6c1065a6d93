package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// ErrNoAddress is returned by LookupNetIP when the name has no address of
// the asked family.
var ErrNoAddress = errors.New("no address for the name")

// LookupNetIP resolves host the way airlock DNS answers it — private zones
// first, then the shared answer cache and the forwarders, stale answers
// when every forwarder fails — so the gateway in the same process dials
// what nodes would have been told (DESIGN §4 Name→IP binding). No client
// policy applies here: the gateway has decided the flow already, and its
// dialer checks the addresses. network is "ip", "ip4" or "ip6"; AAAA is
// asked only when IPv6 is allowed.
func (s *Server) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	name, err := dnsname.Parse(host)
	if err != nil {
		return nil, err
	}
	var qtypes []uint16
	if network != "ip6" {
		qtypes = append(qtypes, dns.TypeA)
	}
	if network != "ip4" && s.allowIPv6 {
		qtypes = append(qtypes, dns.TypeAAAA)
	}
	var out []netip.Addr
	var errs []error
	for _, qt := range qtypes {
		addrs, err := s.resolveType(ctx, name, qt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, addrs...)
	}
	if len(out) > 0 {
		return out, nil
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("resolve %s: %w", name, errors.Join(errs...))
	}
	return nil, fmt.Errorf("resolve %s: %w", name, ErrNoAddress)
}

// CachedNetIP answers host's addresses from what the server holds now, its
// private zones and its cache, without forwarding and without waiting; ok
// is false when a type LookupNetIP would ask for is not held, or holds no
// address (then LookupNetIP gives the answer or the error). The gateway's
// event loops ask it before they hand a resolution to a goroutine.
func (s *Server) CachedNetIP(network, host string) (addrs []netip.Addr, ok bool) {
	name, err := dnsname.Parse(host)
	if err != nil {
		return nil, false
	}
	for _, qt := range [...]uint16{dns.TypeA, dns.TypeAAAA} {
		if qt == dns.TypeA && network == "ip6" || qt == dns.TypeAAAA && (network == "ip4" || !s.allowIPv6) {
			continue
		}
		var msg *dns.Msg
		if z := s.zones.find(name); z != nil {
			msg = new(dns.Msg)
			z.answer(msg, name, qt)
		} else {
			m, _, hit := s.cache.get(cacheKey{name: dns.Fqdn(name.String()), qtype: qt}, s.now())
			if !hit {
				return nil, false
			}
			s.metrics.CacheHits.Inc()
			msg = m
		}
		if msg.Rcode != dns.RcodeSuccess {
			return nil, false
		}
		addrs = append(addrs, answerAddrs(msg, name)...)
	}
	return addrs, len(addrs) > 0
}

func (s *Server) resolveType(ctx context.Context, name dnsname.Name, qtype uint16) ([]netip.Addr, error) {
	var msg *dns.Msg
	if z := s.zones.find(name); z != nil {
		msg = new(dns.Msg)
		z.answer(msg, name, qtype)
	} else {
		m, err := s.lookup(ctx, &record{}, dns.Fqdn(name.String()), qtype)
		if err != nil {
			return nil, err
		}
		msg = m
	}
	if msg.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s: %s", dns.Type(qtype), dns.RcodeToString[msg.Rcode])
	}
	return answerAddrs(msg, name), nil
}

// answerAddrs returns the addresses an answer gives for name, following
// the CNAME chain inside it.
func answerAddrs(msg *dns.Msg, name dnsname.Name) []netip.Addr {
	// Follow the CNAME chain inside the answer to the addresses of its end.
	owner := dns.Fqdn(name.String())
	for i := 0; i < 16; i++ {
		next := ""
		for _, rr := range msg.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, owner) {
				next = c.Target
			}
		}
		if next == "" {
			break
		}
		owner = next
	}
	var out []netip.Addr
	for _, rr := range msg.Answer {
		if !strings.EqualFold(rr.Header().Name, owner) {
			continue
		}
		if a, ok := addrOf(rr); ok {
			out = append(out, a)
		}
	}
	return out
}
