package policy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Policy is a compiled, immutable rule set. Build one with Compile; its
// methods are safe for concurrent use.
type Policy struct {
	location string
	dnat     []*rule // each slice in processing order
	network  []*rule
	app      []*rule
	warnings []Warning
	idx      *index // what Decide, AllowsName and DNAT look rules up in (index.go); nil below indexMinRules
}

// Problem is one validation problem: a path relative to the policy section
// and a message.
type Problem struct {
	Path    string
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Warning is something Compile accepted but a user should hear about, such
// as tag entries skipped for want of policy.location.
type Warning = Problem

// ValidationError is what Compile returns for an invalid Config: every
// problem Validate reports.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid policy: %d problem", len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	for _, p := range e.Problems {
		b.WriteString("\n\t")
		b.WriteString(p.String())
	}
	return b.String()
}

// Compile validates cfg and builds the Policy. An invalid cfg gives a
// *ValidationError listing every problem.
func Compile(cfg Config) (*Policy, error) {
	var problems, warnings []Problem
	b := builder{
		cfg:    cfg,
		report: func(path, msg string) { problems = append(problems, Problem{path, msg}) },
		warn:   func(path, msg string) { warnings = append(warnings, Problem{path, msg}) },
	}
	b.build()
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	// Within a type: group priority, then collection priority, then the
	// order rules are written in (the sort is stable).
	slices.SortStableFunc(b.rules, func(x, y *rule) int {
		return cmp.Or(cmp.Compare(x.groupPrio, y.groupPrio), cmp.Compare(x.collPrio, y.collPrio))
	})
	p := &Policy{location: cfg.Location, warnings: warnings}
	for _, r := range b.rules {
		switch r.typ {
		case TypeDNAT:
			p.dnat = append(p.dnat, r)
		case TypeNetwork:
			p.network = append(p.network, r)
		case TypeApplication:
			p.app = append(p.app, r)
		}
	}
	if len(b.rules) >= indexMinRules {
		p.idx = buildIndex(p)
	}
	return p, nil
}

// indexMinRules: below this many rules, trying each in turn costs less
// than the index lookups, and Compile builds no index (idx nil: Decide,
// AllowsName and DNAT use the linear evaluator).
const indexMinRules = 16

// Warnings returns what Compile accepted with a warning.
func (p *Policy) Warnings() []Warning { return slices.Clone(p.warnings) }

// Location returns the location tag entries were expanded with.
func (p *Policy) Location() string { return p.location }

// DNATListener is an address and protocol a DNAT rule listens on.
type DNATListener struct {
	Proto Proto
	Addr  netip.AddrPort
}

// DNATListeners returns, once each and sorted, the addresses and protocols
// DNAT rules listen on: what the gateway must open.
func (p *Policy) DNATListeners() []DNATListener {
	var out []DNATListener
	for _, r := range p.dnat {
		for _, proto := range []Proto{ProtoTCP, ProtoUDP} {
			if r.protos.has(proto) {
				out = append(out, DNATListener{Proto: proto, Addr: r.listen})
			}
		}
	}
	slices.SortFunc(out, func(a, b DNATListener) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), a.Addr.Compare(b.Addr))
	})
	return slices.Compact(out)
}

// PortRange is an inclusive range of ports for one protocol.
type PortRange struct {
	Proto    Proto
	From, To uint16
}

// NetworkPorts returns the TCP and UDP destination ports that allow rules
// of network collections can match, merged and sorted: what the gateway
// host must intercept for L4 forwarding. Deny rules add nothing, and ICMP
// has no ports.
func (p *Policy) NetworkPorts() []PortRange {
	var all []PortRange
	for _, r := range p.network {
		if r.action != ActionAllow {
			continue
		}
		for _, proto := range []Proto{ProtoTCP, ProtoUDP} {
			if !r.protos.has(proto) {
				continue
			}
			for _, pr := range r.ports {
				all = append(all, PortRange{proto, pr.lo, pr.hi})
			}
		}
	}
	slices.SortFunc(all, func(a, b PortRange) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
	})
	var out []PortRange
	for _, r := range all {
		if n := len(out); n > 0 && out[n-1].Proto == r.Proto && int(r.From) <= int(out[n-1].To)+1 {
			out[n-1].To = max(out[n-1].To, r.To)
			continue
		}
		out = append(out, r)
	}
	return out
}
