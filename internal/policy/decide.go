package policy

import (
	"net/netip"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// Decide returns the decision for a flow: DNAT rules first, then network
// rules, then application rules (only for TCP flows whose App is http or
// https and that have a Name); within a type by group priority, collection
// priority and rule order; the first matching rule decides; no match is a
// deny with reason no_match, sni_missing or host_missing.
//
// It looks the candidate rules up in indexes built by Compile (index.go),
// so its cost hardly grows with the number of rules; the answer is the one
// decideLinear gives by trying every rule in order.
func (p *Policy) Decide(f Flow) Decision {
	if p.idx == nil { // few rules (indexMinRules)
		return p.decideLinear(f)
	}
	return p.decideIndexed(f)
}

// decideLinear is Decide by trying every rule in processing order: the
// reference the indexes are tested against.
func (p *Policy) decideLinear(f Flow) Decision {
	return p.decide(f, nil)
}

// DecideExplain is Decide that also returns every rule tried, in order,
// with why it did or did not match. It tries the rules one by one (the
// linear evaluator), so its cost grows with the rules before the match.
func (p *Policy) DecideExplain(f Flow) Explanation {
	e := Explanation{Flow: f}
	e.Decision = p.decide(f, &e)
	return e
}

func (p *Policy) decide(f Flow, e *Explanation) Decision {
	f.Src = f.Src.Unmap()
	f.Dst = netip.AddrPortFrom(f.Dst.Addr().Unmap(), f.Dst.Port())
	for _, r := range p.dnat {
		if e.try(r, &f, r.matchDNAT(&f)) {
			return r.decision()
		}
	}
	for _, r := range p.network {
		if e.try(r, &f, r.matchNetwork(&f)) {
			return r.decision()
		}
	}
	switch {
	case f.Proto != ProtoTCP || f.App == AppNone:
		e.note("application rules not tried: they apply only to TCP flows where the gateway read a TLS ClientHello or an HTTP request head")
	case f.Name.IsZero() && f.App == AppHTTPS:
		e.note("application rules not tried: the TLS ClientHello has no SNI")
		return Deny(ReasonSNIMissing)
	case f.Name.IsZero():
		e.note("application rules not tried: the HTTP request has no host")
		return Deny(ReasonHostMissing)
	default:
		for _, r := range p.app {
			if e.try(r, &f, r.matchApplication(&f)) {
				return r.decision()
			}
		}
	}
	return Deny(ReasonNoMatch)
}

// AllowsName answers the DNS server's question: would a flow from src to
// name be allowed by the first network rule (through destinationFqdns) or
// application rule (through targetFqdns or fqdnTags) that names it, in the
// same order as Decide? Deny collections count: a name a deny rule matches
// first is denied. Protocols and ports are not known at DNS time and are
// not compared; DNAT rules and network rules without destinationFqdns
// never match a name.
func (p *Policy) AllowsName(src netip.Addr, name dnsname.Name) Decision {
	if p.idx == nil {
		return p.allowsNameLinear(src, name)
	}
	return p.allowsNameIndexed(src, name)
}

// allowsNameLinear is AllowsName by trying every rule in order.
func (p *Policy) allowsNameLinear(src netip.Addr, name dnsname.Name) Decision {
	return p.allowsName(src, name, nil)
}

// AllowsNameExplain is AllowsName with the rules tried.
func (p *Policy) AllowsNameExplain(src netip.Addr, name dnsname.Name) Explanation {
	e := Explanation{Flow: Flow{Src: src, Name: name}, NameOnly: true}
	e.Decision = p.allowsName(src, name, &e)
	return e
}

func (p *Policy) allowsName(src netip.Addr, name dnsname.Name, e *Explanation) Decision {
	if name.IsZero() {
		return Deny(ReasonNoMatch)
	}
	f := Flow{Src: src.Unmap(), Name: name}
	for _, r := range p.network {
		if e.try(r, &f, r.matchNetworkName(&f)) {
			return r.decision()
		}
	}
	for _, r := range p.app {
		if e.try(r, &f, r.matchApplicationName(&f)) {
			return r.decision()
		}
	}
	return Deny(ReasonNoMatch)
}

// DNAT returns where to forward a connection that arrived on listen (a
// gateway address and port) over proto from src, by the first DNAT rule
// that matches. The zero AddrPort and a deny come back when none does.
func (p *Policy) DNAT(listen netip.AddrPort, proto Proto, src netip.Addr) (netip.AddrPort, Decision) {
	if p.idx == nil {
		return p.dnatLinear(listen, proto, src)
	}
	f := Flow{Src: src.Unmap(), Dst: netip.AddrPortFrom(listen.Addr().Unmap(), listen.Port()), Proto: proto}
	if r := p.dnatIndexed(&f); r != nil {
		return r.trans, r.decision()
	}
	return netip.AddrPort{}, Deny(ReasonNoMatch)
}

// dnatLinear is DNAT by trying every DNAT rule in order.
func (p *Policy) dnatLinear(listen netip.AddrPort, proto Proto, src netip.Addr) (netip.AddrPort, Decision) {
	f := Flow{Src: src.Unmap(), Dst: netip.AddrPortFrom(listen.Addr().Unmap(), listen.Port()), Proto: proto}
	for _, r := range p.dnat {
		if r.matchDNAT(&f) == "" {
			return r.trans, r.decision()
		}
	}
	return netip.AddrPort{}, Deny(ReasonNoMatch)
}

func (r *rule) decision() Decision {
	d := Decision{Verdict: VerdictAllow, Reason: ReasonRuleAllow, Type: r.typ, Group: r.group, Collection: r.collection, Rule: r.name}
	if r.action == ActionDeny {
		d.Verdict, d.Reason = VerdictDeny, ReasonRuleDeny
	}
	return d
}

// The match functions return "" when the rule matches the flow, otherwise
// the key of the first rule field that does not.

func (r *rule) matchDNAT(f *Flow) string {
	switch {
	case !r.protos.has(f.Proto):
		return "protocols"
	case f.Dst.Addr() != r.listen.Addr():
		return "destinationAddresses"
	case f.Dst.Port() != r.listen.Port():
		return "destinationPorts"
	case !r.src.contains(f.Src):
		return "sourceAddresses"
	}
	return ""
}

func (r *rule) matchNetwork(f *Flow) string {
	switch {
	case !r.protos.has(f.Proto):
		return "protocols"
	case !r.src.contains(f.Src):
		return "sourceAddresses"
	case f.Proto != ProtoICMP && !r.portOK(f.Dst.Port()):
		return "destinationPorts"
	case r.dst.contains(f.Dst.Addr()), r.resolvedName(f.DstNames) >= 0:
		return ""
	}
	return r.destinationField()
}

func (r *rule) matchNetworkName(f *Flow) string {
	switch {
	case !r.src.contains(f.Src):
		return "sourceAddresses"
	case r.resolvedName([]dnsname.Name{f.Name}) < 0:
		return "destinationFqdns"
	}
	return ""
}

func (r *rule) matchApplication(f *Flow) string {
	if !r.src.contains(f.Src) {
		return "sourceAddresses"
	}
	want := appProto{f.App, f.Dst.Port()}
	named := false
	for i := range r.targets {
		t := &r.targets[i]
		if t.pattern.Match(f.Name) {
			if containsProto(t.protos, want) {
				return ""
			}
			named = true
		}
	}
	if named {
		return "protocols"
	}
	return r.targetField()
}

func (r *rule) matchApplicationName(f *Flow) string {
	if !r.src.contains(f.Src) {
		return "sourceAddresses"
	}
	if r.target(f.Name, nil) < 0 {
		return r.targetField()
	}
	return ""
}

func (r *rule) portOK(port uint16) bool {
	for _, pr := range r.ports {
		if port >= pr.lo && port <= pr.hi {
			return true
		}
	}
	return false
}

// resolvedName returns the index in names of the first name listed in the
// rule's destinationFqdns, or -1.
func (r *rule) resolvedName(names []dnsname.Name) int {
	for i, n := range names {
		for _, d := range r.dstNames {
			if n == d {
				return i
			}
		}
	}
	return -1
}

// target returns the index of the first target matching name (and, when
// want is not nil, allowing *want), or -1.
func (r *rule) target(name dnsname.Name, want *appProto) int {
	for i := range r.targets {
		if r.targets[i].pattern.Match(name) && (want == nil || containsProto(r.targets[i].protos, *want)) {
			return i
		}
	}
	return -1
}

func (r *rule) destinationField() string {
	switch {
	case len(r.dstNames) == 0:
		return "destinationAddresses"
	case !r.dst.any && len(r.dst.prefixes) == 0:
		return "destinationFqdns"
	}
	return "destinationAddresses/destinationFqdns"
}

func (r *rule) targetField() string {
	switch {
	case r.tagged && r.listed:
		return "targetFqdns/fqdnTags"
	case r.tagged:
		return "fqdnTags"
	}
	return "targetFqdns"
}
