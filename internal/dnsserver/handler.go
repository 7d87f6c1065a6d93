package dnsserver

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/policy"
)

// dohCanary is the name browsers query to learn whether the network forbids
// DNS over HTTPS (an NXDOMAIN answer means "forbidden").
var dohCanary = nameOf("use-application-dns.net")

// ServeDNS answers one query: it is the dns.Handler of both listeners. A
// UDP answer the fast path may replay is kept for it (Server.remember).
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	src, tcp := clientOf(w.RemoteAddr())
	resp, rec := s.handleRec(context.Background(), src, tcp, req)
	pkt, err := resp.Pack()
	if err != nil {
		_ = w.WriteMsg(resp) // fails the same way; the writer reports it
		return
	}
	if p, ok := w.RemoteAddr().(*peerAddr); ok {
		s.remember(p.key, rec, resp, pkt)
	}
	_, _ = w.Write(pkt) // the client may be gone; nothing to do about it
}

func clientOf(a net.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case *peerAddr:
		return a.ap.Addr().Unmap(), false
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap(), false
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// handle decides and answers req from src, records observations, logs the
// decision once and counts it. It never returns nil.
func (s *Server) handle(ctx context.Context, src netip.Addr, tcp bool, req *dns.Msg) *dns.Msg {
	resp, _ := s.handleRec(ctx, src, tcp, req)
	return resp
}

// handleRec is handle, also returning the query's record.
func (s *Server) handleRec(ctx context.Context, src netip.Addr, tcp bool, req *dns.Msg) (*dns.Msg, *record) {
	start := time.Now()
	rec := &record{src: src, tcp: tcp, pol: s.policy.Load()}
	resp := s.answer(ctx, rec, req)
	resp.Id = req.Id
	resp.Response = true
	resp.Opcode = req.Opcode
	resp.RecursionDesired = req.RecursionDesired
	resp.RecursionAvailable = true
	resp.CheckingDisabled = req.CheckingDisabled
	if len(req.Question) > 0 && len(resp.Question) == 0 {
		resp.Question = req.Question[:1]
	}
	rec.rcode = resp.Rcode
	rec.answers = len(resp.Answer)
	s.fitSize(req, resp, tcp)
	if !rec.wouldDeny {
		markBlocked(resp, rec.decision)
	}
	s.metrics.Queries.WithLabelValues(string(rec.decision.Verdict), string(rec.decision.Reason)).Inc()
	s.hits.Count(hitsComponent, rec.decision, s.now()) // every question, logged or sampled out
	s.logRecord(rec, start)
	return resp, rec
}

// fitSize adds an OPT record when the client sent one and, over UDP,
// truncates the answer to the client's payload size (512 without EDNS0,
// at most 4096), setting TC so the client retries over TCP.
func (s *Server) fitSize(req, resp *dns.Msg, tcp bool) {
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(dns.MinMsgSize, min(int(opt.UDPSize()), upstreamUDPSize))
		resp.SetEdns0(upstreamUDPSize, false)
	}
	if !tcp {
		resp.Truncate(size)
	}
}

// markBlocked adds an Extended DNS Error (RFC 8914, code 15 "Blocked")
// naming airlock and the reason to a policy denial when the answer carries
// EDNS0: a client, or `airlock verify`, can tell airlock's refusal from an
// outside resolver's NXDOMAIN. Malformed queries are not marked.
func markBlocked(resp *dns.Msg, d policy.Decision) {
	if d.Allowed() || d.Reason == policy.ReasonMalformed || d.Verdict == "" {
		return
	}
	if opt := resp.IsEdns0(); opt != nil {
		opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: EDEPrefix + string(d.Reason)})
	}
}

// EDEPrefix starts the extra text of the Extended DNS Error airlock puts on
// every policy denial ("airlock: no_match", "airlock: qtype_denied" …).
const EDEPrefix = "airlock: "

// answer builds the response for req and fills rec's decision.
func (s *Server) answer(ctx context.Context, rec *record, req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	deny := func(r policy.Reason, rcode int) *dns.Msg {
		rec.decision, rec.wouldDeny = policy.Deny(r), false
		resp.Rcode = rcode
		return resp
	}
	if req.Response || len(req.Question) != 1 {
		return deny(policy.ReasonMalformed, dns.RcodeFormatError)
	}
	q := req.Question[0]
	resp.Question = []dns.Question{q}
	rec.qname, rec.qtype = q.Name, q.Qtype
	if req.Opcode != dns.OpcodeQuery {
		return deny(policy.ReasonMalformed, dns.RcodeNotImplemented)
	}
	if q.Qclass != dns.ClassINET {
		return deny(policy.ReasonMalformed, dns.RcodeRefused)
	}
	name, err := dnsname.Parse(q.Name)
	if err != nil {
		return deny(policy.ReasonNameInvalid, s.blocked)
	}
	rec.qname = name.String()
	if name == dohCanary {
		return deny(policy.ReasonDoHCanary, dns.RcodeNameError)
	}
	if z := s.zones.find(name); z != nil {
		rec.decision = policy.Decision{Verdict: policy.VerdictAllow, Reason: policy.ReasonPrivateZone}
		z.answer(resp, name, q.Qtype)
		s.finish(rec, resp)
		return resp
	}
	d := s.decideName(rec, name)
	rec.decision = d
	if !d.Allowed() {
		if !s.reportOnly(d) {
			resp.Rcode = s.blocked
			return resp
		}
		rec.wouldDeny = true // report mode: answered as if allowed
	}
	switch {
	case q.Qtype == dns.TypeHTTPS || q.Qtype == dns.TypeSVCB:
		rec.stripped = append(rec.stripped, dns.Type(q.Qtype).String())
		return resp // NODATA: no ECH keys, no alternative endpoints
	case !s.qtypes[q.Qtype]:
		return deny(policy.ReasonQTypeDenied, s.blocked)
	case q.Qtype == dns.TypeAAAA && !s.allowIPv6:
		rec.stripped = append(rec.stripped, "AAAA")
		return resp // NODATA
	}
	up, err := s.lookup(ctx, rec, name.String(), q.Qtype)
	if err != nil {
		rec.err = err
		resp.Rcode = dns.RcodeServerFailure
		return resp
	}
	return s.filter(rec, resp, up, name, q.Qtype)
}

// decideName is the policy question for one name from rec's client, under
// the policy the query started with: private zones are answered; then the
// policy decides; a name it does not match (no_match) is still answered
// when dns.allowNames lists it. A deny rule wins.
func (s *Server) decideName(rec *record, n dnsname.Name) policy.Decision {
	if s.zones.find(n) != nil {
		return policy.Decision{Verdict: policy.VerdictAllow, Reason: policy.ReasonPrivateZone}
	}
	d := policy.Deny(policy.ReasonNoMatch)
	if rec.pol != nil && rec.pol.p != nil {
		d = rec.pol.p.AllowsName(rec.src, n)
	}
	if d.Allowed() || d.Reason == policy.ReasonRuleDeny {
		return d
	}
	for _, p := range s.allowNames {
		if p.Match(n) {
			return policy.Decision{Verdict: policy.VerdictAllow, Reason: policy.ReasonAllowNames}
		}
	}
	return d
}

// reportOnly reports whether the denial d is only logged: dns.mode is
// report and the policy's rules denied the name (no rule allowed it, or a
// deny rule matched). Denials that protect the node are never reported
// only.
func (s *Server) reportOnly(d policy.Decision) bool {
	return s.report && !d.Allowed() && (d.Reason == policy.ReasonNoMatch || d.Reason == policy.ReasonRuleDeny)
}

// lookup returns the upstream answer for (name, qtype): fresh from the
// cache, else from the forwarders (one request however many clients ask at
// once), else stale from the cache when every forwarder failed.
func (s *Server) lookup(ctx context.Context, rec *record, name string, qtype uint16) (*dns.Msg, error) {
	k := cacheKey{name: name, qtype: qtype}
	if m, h, ok := s.cache.get(k, s.now()); ok {
		s.metrics.CacheHits.Inc()
		rec.cache = "hit"
		rec.hit = h
		return m, nil
	}
	s.metrics.CacheMisses.Inc()
	rec.cache = "miss"
	v, err, _ := s.flight.Do(name+"/"+dns.Type(qtype).String(), func() (any, error) {
		m, err := s.fwd.resolve(context.WithoutCancel(ctx), name, qtype)
		if err != nil {
			return nil, err
		}
		now := s.now()
		s.cache.put(k, m, now)
		if c, _, ok := s.cache.get(k, now); ok {
			return c, nil
		}
		return capTTL(m.Copy()), nil
	})
	if err != nil {
		if m := s.cache.stale(k, s.now()); m != nil {
			s.metrics.StaleAnswers.Inc()
			rec.cache = "stale"
			rec.err = err
			return m, nil
		}
		return nil, err
	}
	return v.(*dns.Msg).Copy(), nil
}

// capTTL lowers the TTLs of an answer that was not cached to the positive
// cap.
func capTTL(m *dns.Msg) *dns.Msg {
	for _, rr := range allRRs(m) {
		rr.Header().Ttl = min(rr.Header().Ttl, uint32(maxPositiveTTL.Seconds()))
	}
	return m
}
