package dnsserver

import (
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/policy"
)

// maxChain bounds the CNAME chain followed in one answer.
const maxChain = 16

// filter turns an upstream answer for an allowed (name, qtype) into the
// client's answer: it follows the CNAME chain from name, checks every name
// in it against the policy (a chain into a denied name is denied), hands a
// chain that enters a private zone to that zone, keeps only the chain's
// records of the asked type, refuses internal addresses for public names
// (rebinding), and keeps only the SOA of a negative answer.
func (s *Server) filter(rec *record, resp, up *dns.Msg, name dnsname.Name, qtype uint16) *dns.Msg {
	resp.Rcode = up.Rcode
	cur := name
	for range maxChain {
		c := findCNAME(up.Answer, cur)
		if c == nil {
			break
		}
		t, err := dnsname.Parse(c.Target)
		if err != nil {
			return s.denyChain(rec, resp, policy.Deny(policy.ReasonNameInvalid), c.Target)
		}
		if d := s.decideName(rec, t); !d.Allowed() {
			if !s.reportOnly(d) {
				return s.denyChain(rec, resp, d, t.String())
			}
			if !rec.wouldDeny { // the first name the policy denied decides the record
				rec.decision, rec.decided, rec.wouldDeny = d, t.String(), true
			}
		}
		resp.Answer = append(resp.Answer, c)
		if z := s.zones.find(t); z != nil {
			rec.zoneTail = true // zone TTLs do not count down: never replayed
			tail := new(dns.Msg)
			z.answer(tail, t, qtype)
			resp.Answer = append(resp.Answer, tail.Answer...)
			resp.Ns = tail.Ns
			resp.Rcode = tail.Rcode
			s.finish(rec, resp)
			return resp
		}
		cur = t
	}
	for _, rr := range up.Answer {
		h := rr.Header()
		if h.Rrtype == dns.TypeCNAME || (h.Rrtype != qtype && qtype != dns.TypeANY) || !sameName(h.Name, cur) {
			continue
		}
		if a, ok := addrOf(rr); ok && s.rebinding(a) {
			return s.denyChain(rec, resp, policy.Deny(policy.ReasonRebinding), cur.String())
		}
		resp.Answer = append(resp.Answer, rr)
	}
	if len(resp.Answer) == 0 || resp.Rcode != dns.RcodeSuccess {
		for _, rr := range up.Ns {
			if rr.Header().Rrtype == dns.TypeSOA {
				resp.Ns = append(resp.Ns, rr)
			}
		}
	}
	s.finish(rec, resp)
	return resp
}

// denyChain answers blockedRcode because of a name in the chain.
func (s *Server) denyChain(rec *record, resp *dns.Msg, d policy.Decision, decided string) *dns.Msg {
	rec.decision = d
	rec.decided = decided
	rec.wouldDeny = false // report mode never lets these through
	resp.Answer, resp.Ns = nil, nil
	resp.Rcode = s.blocked
	return resp
}

// finish strips what is never sent (HTTPS and SVCB records; AAAA unless
// gateway.allowIPv6) and records every remaining A and AAAA against every
// name of the answer's CNAME chain, before the answer leaves.
func (s *Server) finish(rec *record, resp *dns.Msg) {
	kept := resp.Answer[:0]
	for _, rr := range resp.Answer {
		t := rr.Header().Rrtype
		if t == dns.TypeHTTPS || t == dns.TypeSVCB || (t == dns.TypeAAAA && !s.allowIPv6) {
			rec.stripped = appendOnce(rec.stripped, dns.Type(t).String())
			continue
		}
		kept = append(kept, rr)
	}
	resp.Answer = kept
	names := chainNames(resp)
	now := s.now()
	grace := s.cfg.ObservationGrace
	for _, rr := range resp.Answer {
		if a, ok := addrOf(rr); ok {
			ttl := time.Duration(rr.Header().Ttl) * time.Second
			s.obs.Record(a, names, now.Add(ttl+grace), now)
		}
	}
}

// chainNames returns the question name and every CNAME target in resp.
func chainNames(resp *dns.Msg) []dnsname.Name {
	var out []dnsname.Name
	if len(resp.Question) > 0 {
		if n, err := dnsname.Parse(resp.Question[0].Name); err == nil {
			out = append(out, n)
		}
	}
	for _, rr := range resp.Answer {
		if c, ok := rr.(*dns.CNAME); ok {
			if n, err := dnsname.Parse(c.Target); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

func findCNAME(rrs []dns.RR, owner dnsname.Name) *dns.CNAME {
	for _, rr := range rrs {
		if c, ok := rr.(*dns.CNAME); ok && sameName(c.Hdr.Name, owner) {
			return c
		}
	}
	return nil
}

// sameName compares a wire name (any case, trailing dot) with a Name.
func sameName(wire string, n dnsname.Name) bool {
	return strings.EqualFold(strings.TrimSuffix(wire, "."), n.String())
}

func addrOf(rr dns.RR) (netip.Addr, bool) {
	switch rr := rr.(type) {
	case *dns.A:
		a, ok := netip.AddrFromSlice(rr.A)
		return a.Unmap(), ok
	case *dns.AAAA:
		a, ok := netip.AddrFromSlice(rr.AAAA)
		return a, ok
	}
	return netip.Addr{}, false
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
