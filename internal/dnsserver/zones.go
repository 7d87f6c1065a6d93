package dnsserver

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// zoneTTL is the TTL of synthesised SOA and NS records and the negative
// TTL (SOA minimum) of private zones.
const zoneTTL = 300

// zone is one private zone, immutable after newZones.
type zone struct {
	apex    dnsname.Name
	records map[string][]dns.RR // lowercase FQDN (trailing dot) → records
	soa     *dns.SOA
	ns      *dns.NS
}

// zones are the private zones, immutable after newZones.
type zones struct {
	byApex map[dnsname.Name]*zone
}

func newZones(cfg []ZoneConfig) (*zones, error) {
	zs := &zones{byApex: map[dnsname.Name]*zone{}}
	for i, zc := range cfg {
		apex, err := dnsname.Parse(zc.Zone)
		if err != nil {
			return nil, fmt.Errorf("privateZones[%d].zone: %w", i, err)
		}
		a := dns.Fqdn(apex.String())
		z := &zone{apex: apex, records: map[string][]dns.RR{}}
		z.soa = &dns.SOA{
			Hdr: dns.RR_Header{Name: a, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: zoneTTL},
			Ns:  "ns." + a, Mbox: "hostmaster." + a, Serial: 1,
			Refresh: 3600, Retry: 600, Expire: 86400, Minttl: zoneTTL,
		}
		z.ns = &dns.NS{Hdr: dns.RR_Header{Name: a, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: zoneTTL}, Ns: "ns." + a}
		for j, rc := range zc.Records {
			rr, err := rc.rr(apex)
			if err != nil {
				return nil, fmt.Errorf("privateZones[%d].records[%d]: %w", i, j, err)
			}
			owner := rr.Header().Name
			z.records[owner] = append(z.records[owner], rr)
		}
		zs.byApex[apex] = z
	}
	return zs, nil
}

// find returns the innermost zone holding n, or nil.
func (zs *zones) find(n dnsname.Name) *zone {
	if zs == nil || len(zs.byApex) == 0 {
		return nil
	}
	s := n.String()
	for {
		if z, ok := zs.byApex[nameOf(s)]; ok {
			return z
		}
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return nil
		}
		s = s[i+1:]
	}
}

// nameOf turns an already-normalized suffix back into a Name; suffixes of a
// valid Name are valid unless they look like an IPv4 literal, which no zone
// apex can be.
func nameOf(s string) dnsname.Name {
	n, _ := dnsname.Parse(s)
	return n
}

// answer fills resp authoritatively for (n, qtype), following CNAMEs inside
// the zone; a CNAME to a name outside the zone ends the answer there.
func (z *zone) answer(resp *dns.Msg, n dnsname.Name, qtype uint16) {
	resp.Authoritative = true
	owner := dns.Fqdn(n.String())
	for range maxChain {
		rrs, exists := z.lookup(owner)
		if !exists {
			if len(resp.Answer) == 0 {
				resp.Rcode = dns.RcodeNameError
			}
			resp.Ns = append(resp.Ns, dns.Copy(z.soa))
			return
		}
		var cname *dns.CNAME
		matched := false
		for _, rr := range rrs {
			t := rr.Header().Rrtype
			if t == qtype || qtype == dns.TypeANY {
				resp.Answer = append(resp.Answer, dns.Copy(rr))
				matched = true
			}
			if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if matched || cname == nil {
			if !matched {
				resp.Ns = append(resp.Ns, dns.Copy(z.soa)) // NODATA
			}
			return
		}
		resp.Answer = append(resp.Answer, dns.Copy(cname))
		t, err := dnsname.Parse(cname.Target)
		if err != nil || !z.contains(t) {
			return // the client resolves a target outside the zone itself
		}
		owner = dns.Fqdn(t.String())
	}
}

// contains reports whether n is the apex or below it.
func (z *zone) contains(n dnsname.Name) bool {
	s := n.String()
	a := z.apex.String()
	return s == a || strings.HasSuffix(s, "."+a)
}

// lookup returns the records at owner (a lowercase FQDN), including the
// synthesised SOA and NS at the apex, and whether the name exists (an empty
// non-terminal exists).
func (z *zone) lookup(owner string) ([]dns.RR, bool) {
	rrs := z.records[owner]
	if owner == dns.Fqdn(z.apex.String()) {
		return append([]dns.RR{z.soa, z.ns}, rrs...), true
	}
	if len(rrs) > 0 {
		return rrs, true
	}
	for o := range z.records {
		if strings.HasSuffix(o, "."+owner) {
			return nil, true
		}
	}
	return nil, false
}
