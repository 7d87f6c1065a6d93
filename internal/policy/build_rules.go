package policy

import (
	"fmt"
	"net/netip"
	"strings"
)

// The per-type rule checks of builder: each reports problems with paths and
// fills the compiled rule.

func (b *builder) sources(path string, r Rule, cr *rule) {
	if len(r.SourceAddresses) == 0 {
		b.report(path+".sourceAddresses", `is required: IP addresses, CIDRs or "*"`)
		return
	}
	cr.src = b.addrs(path+".sourceAddresses", r.SourceAddresses)
}

func (b *builder) addrs(path string, list []string) addrSet {
	var s addrSet
	for n, a := range list {
		p, star, err := parseAddress(a, true)
		switch {
		case err != nil:
			b.report(fmt.Sprintf("%s[%d]", path, n), err.Error())
		case star:
			s.any = true
		default:
			s.prefixes = append(s.prefixes, p)
		}
	}
	return s
}

func (b *builder) network(path string, r Rule, cr *rule) {
	if len(r.Protocols) == 0 {
		b.report(path+".protocols", "is required: one or more of TCP, UDP, ICMP, Any")
	}
	for n, p := range r.Protocols {
		ps, err := parseNetworkProto(p, false)
		if err != nil {
			b.report(fmt.Sprintf("%s.protocols[%d]", path, n), err.Error())
		}
		cr.protos |= ps
	}
	b.sources(path, r, cr)
	if len(r.DestinationAddresses) == 0 && len(r.DestinationFqdns) == 0 {
		b.report(path, "needs destinationAddresses or destinationFqdns")
	}
	cr.dst = b.addrs(path+".destinationAddresses", r.DestinationAddresses)
	for n, s := range r.DestinationFqdns {
		name, err := parseExactName(s)
		if err != nil {
			b.report(fmt.Sprintf("%s.destinationFqdns[%d]", path, n), err.Error())
			continue
		}
		cr.dstNames = append(cr.dstNames, name)
	}
	if len(r.DestinationPorts) == 0 {
		b.report(path+".destinationPorts", `is required: ports such as "123", ranges such as "1000-2000", or "*"`)
	}
	for n, s := range r.DestinationPorts {
		pr, err := parsePorts(s)
		if err != nil {
			b.report(fmt.Sprintf("%s.destinationPorts[%d]", path, n), err.Error())
			continue
		}
		cr.ports = append(cr.ports, pr)
	}
}

func (b *builder) application(path string, r Rule, cr *rule) {
	if len(r.Protocols) == 0 && len(r.TargetFqdns) > 0 {
		b.report(path+".protocols", "is required with targetFqdns: http:PORT or https:PORT, e.g. https:443")
	}
	for n, p := range r.Protocols {
		ap, err := parseAppProto(p)
		if err != nil {
			b.report(fmt.Sprintf("%s.protocols[%d]", path, n), err.Error())
			continue
		}
		cr.appProtos = append(cr.appProtos, ap)
	}
	b.sources(path, r, cr)
	if len(r.TargetFqdns) == 0 && len(r.FqdnTags) == 0 {
		b.report(path, "needs targetFqdns or fqdnTags")
	}
	cr.listed, cr.tagged = len(r.TargetFqdns) > 0, len(r.FqdnTags) > 0
	for n, s := range r.TargetFqdns {
		p, err := parseTarget(s)
		if err != nil {
			b.report(fmt.Sprintf("%s.targetFqdns[%d]", path, n), err.Error())
			continue
		}
		cr.targets = append(cr.targets, target{pattern: p, protos: cr.appProtos})
	}
	for n, name := range r.FqdnTags {
		b.tag(fmt.Sprintf("%s.fqdnTags[%d]", path, n), name, cr)
	}
}

// tag expands an FQDN tag into targets. An entry keeps its own protocol and
// port; when the rule lists protocols too, the entry must be one of them.
func (b *builder) tag(path, name string, cr *rule) {
	var tag *FQDNTag
	for i := range b.tags {
		if strings.EqualFold(b.tags[i].Name, name) {
			tag = &b.tags[i]
		}
	}
	if tag == nil {
		b.report(path, fmt.Sprintf("unknown FQDN tag %q; known tags: %s", name, tagNames(b.tags)))
		return
	}
	added, offProto := 0, 0
	for _, e := range tag.Entries {
		if e.NeedsLocation() && b.cfg.Location == "" {
			b.warn(path, fmt.Sprintf("%s entry %s skipped: set policy.location to expand %s", tag.Name, e.FQDN, LocationPlaceholder))
			continue
		}
		p, err := e.Pattern(b.cfg.Location)
		if err != nil {
			if validLocation(b.cfg.Location) {
				b.report(path, fmt.Sprintf("%s entry %s: %v", tag.Name, e.FQDN, err))
			}
			continue
		}
		ap, err := e.appProto()
		if err != nil {
			b.report(path, fmt.Sprintf("%s entry %s: %v", tag.Name, e.FQDN, err))
			continue
		}
		if len(cr.appProtos) > 0 && !containsProto(cr.appProtos, ap) {
			offProto++
			continue
		}
		cr.targets = append(cr.targets, target{pattern: p, protos: []appProto{ap}, tag: tag.Name})
		added++
	}
	if added == 0 && offProto > 0 {
		b.warn(path, fmt.Sprintf("no entry of %s is used: its entries are for protocols this rule does not list (%s)", tag.Name, joinProtos(cr.appProtos)))
	}
}

func (b *builder) dnat(path string, r Rule, cr *rule) {
	if len(r.Protocols) == 0 {
		b.report(path+".protocols", "is required: TCP, UDP or both")
	}
	for n, p := range r.Protocols {
		ps, err := parseNetworkProto(p, true)
		if err != nil {
			b.report(fmt.Sprintf("%s.protocols[%d]", path, n), err.Error())
		}
		cr.protos |= ps
	}
	b.sources(path, r, cr)
	var addr netip.Addr
	switch len(r.DestinationAddresses) {
	case 0:
		b.report(path+".destinationAddresses", "is required: the one gateway address DNAT listens on")
	case 1:
		a, err := netip.ParseAddr(r.DestinationAddresses[0])
		if err != nil || a.Zone() != "" {
			b.report(path+".destinationAddresses[0]", fmt.Sprintf("%q: want one IP address, the gateway address DNAT listens on", r.DestinationAddresses[0]))
		}
		addr = a.Unmap()
	default:
		b.report(path+".destinationAddresses", fmt.Sprintf("has %d entries; a dnat rule listens on exactly one address", len(r.DestinationAddresses)))
	}
	var port uint16
	switch len(r.DestinationPorts) {
	case 0:
		b.report(path+".destinationPorts", "is required: the one port DNAT listens on")
	case 1:
		p, err := parsePort(r.DestinationPorts[0])
		if err != nil {
			b.report(path+".destinationPorts[0]", fmt.Sprintf("%q: want one port 1..65535, the port DNAT listens on", r.DestinationPorts[0]))
		}
		port = p
	default:
		b.report(path+".destinationPorts", fmt.Sprintf("has %d entries; a dnat rule listens on exactly one port", len(r.DestinationPorts)))
	}
	cr.listen = netip.AddrPortFrom(addr, port)
	var taddr netip.Addr
	if r.TranslatedAddress == "" {
		b.report(path+".translatedAddress", "is required: the IP address to forward to")
	} else if a, err := netip.ParseAddr(r.TranslatedAddress); err != nil || a.Zone() != "" {
		b.report(path+".translatedAddress", fmt.Sprintf("%q: want an IP address", r.TranslatedAddress))
	} else {
		taddr = a.Unmap()
	}
	var tport uint16
	if r.TranslatedPort == "" {
		b.report(path+".translatedPort", "is required: the port to forward to")
	} else if p, err := parsePort(r.TranslatedPort); err != nil {
		b.report(path+".translatedPort", fmt.Sprintf("%q: want one port 1..65535", r.TranslatedPort))
	} else {
		tport = p
	}
	cr.trans = netip.AddrPortFrom(taddr, tport)
}

func containsProto(list []appProto, p appProto) bool {
	for _, q := range list {
		if q == p {
			return true
		}
	}
	return false
}

func joinProtos(list []appProto) string {
	s := make([]string, len(list))
	for i, p := range list {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}
