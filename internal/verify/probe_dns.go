package verify

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/miekg/dns"
)

// Query types the denied-name probes ask for.
const (
	dnsTypeA   = dns.TypeA
	dnsTypeTXT = dns.TypeTXT
)

// unknownName is asked of the outside resolver when deniedName is unset:
// any answer at all shows the resolver is reachable.
const unknownName = "airlock-verify.invalid."

// hasRecords reports whether r answers its question with records.
func hasRecords(r *dns.Msg) bool {
	return r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0
}

// blockedRcode reports an answer airlock DNS gives a denied name.
func blockedRcode(r *dns.Msg) bool {
	return (r.Rcode == dns.RcodeNameError || r.Rcode == dns.RcodeRefused) && len(r.Answer) == 0
}

// deniedName asks the node's resolver for the denied name: records are a
// leak; NXDOMAIN, REFUSED or an empty answer is blocked.
func (b *battery) deniedName(ctx context.Context, qtype uint16) (Outcome, string) {
	srv := b.e.res.server
	r, err := b.e.exchange(ctx, "udp", srv, b.t.DeniedName, qtype)
	if err != nil {
		got, ev := classifyErr(err, b.e.timeout)
		return NotTested, fmt.Sprintf("the node's resolver %s did not answer, so this proves nothing (%s: %s)", srv, got, ev)
	}
	ev := fmt.Sprintf("%s %s from %s: %s", dns.TypeToString[qtype], dns.Fqdn(b.t.DeniedName), srv, answerSummary(r))
	if hasRecords(r) {
		return Leak, ev
	}
	return Blocked, ev
}

// outsideResolver sends a query straight to the outside resolver over
// network. Any answer is a leak, except one marked as airlock DNS's own
// policy refusal (Extended DNS Error 15 "Blocked" with text "airlock: …"):
// the gateway host redirected the query to airlock DNS
// (userDefinedRouting), which never forwards a denied name, so the outside
// resolver was not reached. An NXDOMAIN without that mark is a leak: the
// query name itself left the node.
func (b *battery) outsideResolver(ctx context.Context, network string) (Outcome, string) {
	name := unknownName
	if b.t.DeniedName != "" {
		name = dns.Fqdn(b.t.DeniedName)
	}
	srv, err := netip.ParseAddrPort(b.t.OutsideResolver)
	if err != nil {
		return NotTested, fmt.Sprintf("outsideResolver must be ip:port: %v", err)
	}
	var r *dns.Msg
	if network == "tcp" {
		s := b.e.streamProbe(ctx, srv.String(), func(ctx context.Context, c net.Conn) (string, error) {
			r, err = exchangeOn(c, name)
			if err != nil {
				return "", err
			}
			return "", nil
		})
		if r == nil {
			return s.classify(b.e.timeout)
		}
	} else {
		r, err = b.e.exchange(ctx, "udp", srv, name, dns.TypeA)
		if err != nil {
			return classifyErr(err, b.e.timeout)
		}
	}
	ev := fmt.Sprintf("A %s answered by %s over %s: %s", name, srv, network, answerSummary(r))
	if text, ok := airlockBlocked(r); ok && !hasRecords(r) {
		return Blocked, ev + fmt.Sprintf("; marked as airlock DNS's refusal (Extended DNS Error 15 %q): the query was redirected to airlock DNS, the outside resolver was not reached", text)
	}
	return Leak, ev
}

// airlockEDEPrefix starts the Extended DNS Error text airlock DNS puts on
// every policy denial (internal/dnsserver.EDEPrefix; verify cannot import
// it, the two are kept equal by TestAirlockEDEPrefix).
const airlockEDEPrefix = "airlock: "

// airlockBlocked returns the text of airlock DNS's "Blocked" Extended DNS
// Error in r, if it carries one.
func airlockBlocked(r *dns.Msg) (string, bool) {
	opt := r.IsEdns0()
	if opt == nil {
		return "", false
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok && e.InfoCode == dns.ExtendedErrorCodeBlocked && strings.HasPrefix(e.ExtraText, airlockEDEPrefix) {
			return e.ExtraText, true
		}
	}
	return "", false
}

// exchangeOn sends one A query for name over a connected TCP stream.
func exchangeOn(c net.Conn, name string) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.RecursionDesired = true
	m.SetEdns0(1232, false)
	co := &dns.Conn{Conn: c}
	if err := co.WriteMsg(m); err != nil {
		return nil, err
	}
	return co.ReadMsg()
}

// doh POSTs a DNS wire query to the DoH endpoint. A name in the URL is
// resolved through the node's resolver; when it does not resolve, a
// workload cannot find the endpoint by name.
func (b *battery) doh(ctx context.Context) (Outcome, string) {
	u, err := url.Parse(b.t.DoHURL)
	if err != nil {
		return NotTested, fmt.Sprintf("dohURL: %v", err)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		if !b.e.res.server.IsValid() {
			return NotTested, "dohURL names a host and there is no resolver for the node: " + b.e.res.source
		}
		ip, err = b.e.lookup(ctx, host)
		if err != nil {
			return Blocked, fmt.Sprintf("the DoH host does not resolve through the node's resolver (%v); set dohURL with an IP literal to probe the address itself", err)
		}
	}
	m := new(dns.Msg)
	m.SetQuestion(unknownName, dns.TypeA)
	m.Id = 0 // RFC 8484 §4.1
	q, err := m.Pack()
	if err != nil {
		return NotTested, fmt.Sprintf("packing the DoH query: %v", err)
	}
	addr := net.JoinHostPort(ip.String(), port)
	got, ev := b.e.streamProbe(ctx, addr, dohTalk(u, q)).classify(b.e.timeout)
	return got, addr + ": " + ev
}
