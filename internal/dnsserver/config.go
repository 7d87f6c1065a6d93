package dnsserver

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// Config is the dns section of airlock.yaml. The gateway settings the DNS
// server also obeys (allowedInternalRanges, allowIPv6) come through Deps.
type Config struct {
	// Listen is the host:port served over UDP and TCP. Empty (the default):
	// the DNS server does not run. Checked by the config loader
	// (config:"listen").
	Listen string `yaml:"listen" config:"listen"`
	// Forwarders are upstream resolvers as host:port (IP literals), tried in
	// order; one that fails is tried last for the next 5 s. Empty: only
	// private zones are answered and every other allowed name gets
	// SERVFAIL. Required when listen is set.
	Forwarders []string `yaml:"forwarders"`
	// ForwarderTimeout bounds one exchange with one forwarder (UDP, plus
	// the TCP retry when the answer was truncated). Default 2s; must be
	// positive. The worst case for a query is len(forwarders) × this.
	ForwarderTimeout time.Duration `yaml:"forwarderTimeout"`
	// StaleFor is how long after its TTL ran out a cached answer is still
	// served (with TTL 30 s) when every forwarder fails. Default 1h; 0
	// serves nothing stale.
	StaleFor time.Duration `yaml:"staleFor"`
	// AllowQueryTypes are the query types answered for allowed names
	// (mnemonics as in zone files, case-insensitive). Default A, AAAA,
	// CNAME, SRV, PTR, SOA, NS. Other types (TXT, NULL, ANY, …) are denied
	// with reason qtype_denied, except inside private zones. HTTPS and SVCB
	// queries are answered with no data whatever this says (ECH).
	AllowQueryTypes []string `yaml:"allowQueryTypes"`
	// LogAllowed is all, sampled or none: which allowed queries get a
	// decision record. sampled (the default) logs the first allowed query
	// for a name in each minute and then every 100th. Denied queries are
	// always logged.
	LogAllowed string `yaml:"logAllowed"`
	// BlockedRcode is NXDOMAIN (the default) or REFUSED: the answer to a
	// denied query. musl's resolver stops at REFUSED, glibc tries the next
	// nameserver.
	BlockedRcode string `yaml:"blockedRcode"`
	// AllowNames are name patterns (as in policy targetFqdns: "name",
	// "*.suffix", "*") answered even when no policy rule allows them. A
	// policy deny rule still wins. Default empty.
	AllowNames []string `yaml:"allowNames"`
	// PrivateZones are answered authoritatively, for every client, whatever
	// the policy says. Default none.
	PrivateZones []ZoneConfig `yaml:"privateZones"`
	// ObservationGrace is how long an address stays bound to the names it
	// was answered for after the answer's TTL ran out (what FQDN network
	// rules match). Default 15m (Azure Firewall keeps unrefreshed IPs 15
	// minutes); must not be negative.
	ObservationGrace time.Duration `yaml:"observationGrace"`
	// ObservationEntries caps the (address, name) pairs kept; the pair that
	// expires first is dropped when full. Default 100000.
	ObservationEntries int `yaml:"observationEntries"`
	// Mode is enforce (the default) or report. In report mode a name the
	// policy denies (no rule allows it, or a deny rule matches) is answered
	// as if allowed — forwarded, cached, observed for FQDN network rules —
	// and logged with verdict deny, mode report and would_deny true. The
	// checks that protect the node keep applying: malformed questions,
	// invalid names, query types outside allowQueryTypes, internal
	// addresses for public names (rebinding) and the DoH canary.
	Mode string `yaml:"mode"`
	// CacheEntries caps the answers cached (one per name and type); when
	// full, the oldest stored answer goes (answers past their stale window
	// go early). It also caps the
	// UDP fast path's packed answers (one per client, question and EDNS0
	// size). Default 100000.
	CacheEntries int `yaml:"cacheEntries"`
	// Readers is how many UDP sockets serve dns.listen, bound to the same
	// address with SO_REUSEPORT (the kernel spreads clients over them by
	// their address and port), each read by its own goroutine; it is also
	// how many sockets each forwarder is asked over. Default 0: GOMAXPROCS
	// (the CPUs airlock may run on). At most 64.
	Readers int `yaml:"readers"`
}

// ZoneConfig is one private zone.
type ZoneConfig struct {
	// Zone is the zone's apex, e.g. privatelink.azurecr.io. Required.
	Zone string `yaml:"zone"`
	// Records of the zone; SOA and NS at the apex are synthesised.
	Records []RecordConfig `yaml:"records"`
}

// RecordConfig is one record of a private zone.
type RecordConfig struct {
	// Name relative to the zone ("myacr", "a.b"), or "@" (or empty) for
	// the apex.
	Name string `yaml:"name"`
	// Type is A, AAAA, CNAME, TXT or SRV. Required.
	Type string `yaml:"type"`
	// Value: an IPv4 address (A), an IPv6 address (AAAA), a name (CNAME;
	// absolute), text of any length (TXT; split into 255-byte strings), or
	// "priority weight port target" (SRV).
	Value string `yaml:"value"`
	// TTL in seconds. Default 0 means 300.
	TTL uint32 `yaml:"ttl"`
}

// Defaults.
const (
	DefaultForwarderTimeout   = 2 * time.Second
	DefaultStaleFor           = time.Hour
	DefaultObservationGrace   = 15 * time.Minute
	DefaultObservationEntries = 100000
	DefaultCacheEntries       = 100000
	DefaultRecordTTL          = 300
	maxReaders                = 64
)

// DefaultAllowQueryTypes is allowQueryTypes' default.
var defaultAllowQueryTypes = []string{"A", "AAAA", "CNAME", "SRV", "PTR", "SOA", "NS"}

// Modes.
const (
	ModeEnforce = "enforce"
	ModeReport  = "report"
)

// Log settings.
const (
	LogAll     = "all"
	LogSampled = "sampled"
	LogNone    = "none"
)

// SetDefaults fills what the file left out.
func (c *Config) SetDefaults() {
	if c.ForwarderTimeout == 0 {
		c.ForwarderTimeout = DefaultForwarderTimeout
	}
	if c.StaleFor == 0 {
		c.StaleFor = DefaultStaleFor
	}
	if c.AllowQueryTypes == nil {
		c.AllowQueryTypes = slices.Clone(defaultAllowQueryTypes)
	}
	if c.LogAllowed == "" {
		c.LogAllowed = LogSampled
	}
	if c.Mode == "" {
		c.Mode = ModeEnforce
	}
	if c.BlockedRcode == "" {
		c.BlockedRcode = "NXDOMAIN"
	}
	if c.ObservationGrace == 0 {
		c.ObservationGrace = DefaultObservationGrace
	}
	if c.ObservationEntries == 0 {
		c.ObservationEntries = DefaultObservationEntries
	}
	if c.CacheEntries == 0 {
		c.CacheEntries = DefaultCacheEntries
	}
}

// Validate reports every problem with a path relative to the section. The
// listen address is checked by the config loader.
func (c *Config) Validate(report func(path, msg string)) {
	if c.Listen != "" && len(c.Forwarders) == 0 && len(c.PrivateZones) == 0 {
		report("forwarders", "must list at least one host:port when dns.listen is set (or define privateZones)")
	}
	for i, f := range c.Forwarders {
		if _, err := netip.ParseAddrPort(f); err != nil {
			report(fmt.Sprintf("forwarders[%d]", i), fmt.Sprintf("%q: want an IP address and port such as 10.0.0.53:53", f))
		}
	}
	if c.ForwarderTimeout <= 0 {
		report("forwarderTimeout", fmt.Sprintf("must be positive, got %s", c.ForwarderTimeout))
	}
	if c.StaleFor < 0 {
		report("staleFor", fmt.Sprintf("must not be negative, got %s", c.StaleFor))
	}
	if c.ObservationGrace < 0 {
		report("observationGrace", fmt.Sprintf("must not be negative, got %s", c.ObservationGrace))
	}
	if c.ObservationEntries < 0 {
		report("observationEntries", fmt.Sprintf("must not be negative, got %d", c.ObservationEntries))
	}
	if c.Readers < 0 || c.Readers > maxReaders {
		report("readers", fmt.Sprintf("must be between 0 (GOMAXPROCS) and %d, got %d", maxReaders, c.Readers))
	}
	if c.CacheEntries < 0 {
		report("cacheEntries", fmt.Sprintf("must not be negative, got %d", c.CacheEntries))
	}
	for i, t := range c.AllowQueryTypes {
		if _, ok := dns.StringToType[strings.ToUpper(t)]; !ok {
			report(fmt.Sprintf("allowQueryTypes[%d]", i), fmt.Sprintf("%q is not a DNS query type", t))
		}
	}
	switch c.LogAllowed {
	case LogAll, LogSampled, LogNone:
	default:
		report("logAllowed", fmt.Sprintf("%q: want all, sampled or none", c.LogAllowed))
	}
	switch c.Mode {
	case ModeEnforce, ModeReport, "":
	default:
		report("mode", fmt.Sprintf("%q: want enforce or report", c.Mode))
	}
	if _, ok := blockedRcodes[c.BlockedRcode]; !ok {
		report("blockedRcode", fmt.Sprintf("%q: want NXDOMAIN or REFUSED", c.BlockedRcode))
	}
	for i, p := range c.AllowNames {
		if _, err := dnsname.ParsePattern(p); err != nil {
			report(fmt.Sprintf("allowNames[%d]", i), err.Error())
		}
	}
	seen := map[dnsname.Name]int{}
	for i, z := range c.PrivateZones {
		p := fmt.Sprintf("privateZones[%d]", i)
		n, err := dnsname.Parse(z.Zone)
		if err != nil {
			report(p+".zone", err.Error())
			continue
		}
		if j, dup := seen[n]; dup {
			report(p+".zone", fmt.Sprintf("duplicate zone %s (also privateZones[%d])", n, j))
		}
		seen[n] = i
		for j, r := range z.Records {
			if _, err := r.rr(n); err != nil {
				report(fmt.Sprintf("%s.records[%d]", p, j), err.Error())
			}
		}
	}
}

var blockedRcodes = map[string]int{"NXDOMAIN": dns.RcodeNameError, "REFUSED": dns.RcodeRefused}

// rr builds the record in zone.
func (r RecordConfig) rr(zone dnsname.Name) (dns.RR, error) {
	owner := zone.String()
	if r.Name != "" && r.Name != "@" {
		n, err := dnsname.Parse(r.Name + "." + owner)
		if err != nil || strings.HasSuffix(r.Name, ".") {
			return nil, fmt.Errorf("name %q: want a name relative to the zone, or @", r.Name)
		}
		owner = n.String()
	}
	ttl := r.TTL
	if ttl == 0 {
		ttl = DefaultRecordTTL
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: dns.Fqdn(owner), Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}
	switch strings.ToUpper(r.Type) {
	case "A":
		a, err := netip.ParseAddr(r.Value)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("value %q: want an IPv4 address for type A", r.Value)
		}
		return &dns.A{Hdr: hdr(dns.TypeA), A: net.IP(a.AsSlice())}, nil
	case "AAAA":
		a, err := netip.ParseAddr(r.Value)
		if err != nil || !a.Is6() || a.Is4In6() {
			return nil, fmt.Errorf("value %q: want an IPv6 address for type AAAA", r.Value)
		}
		return &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: net.IP(a.AsSlice())}, nil
	case "CNAME":
		t, err := dnsname.Parse(r.Value)
		if err != nil {
			return nil, fmt.Errorf("value: %w", err)
		}
		return &dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: dns.Fqdn(t.String())}, nil
	case "TXT":
		var parts []string
		for s := r.Value; ; s = s[255:] {
			if len(s) <= 255 {
				parts = append(parts, s)
				break
			}
			parts = append(parts, s[:255])
		}
		return &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: parts}, nil
	case "SRV":
		f := strings.Fields(r.Value)
		if len(f) != 4 {
			return nil, fmt.Errorf("value %q: want \"priority weight port target\" for type SRV", r.Value)
		}
		var nums [3]uint16
		for k := range 3 {
			v, err := strconv.ParseUint(f[k], 10, 16)
			if err != nil {
				return nil, fmt.Errorf("value %q: %q is not a number 0..65535", r.Value, f[k])
			}
			nums[k] = uint16(v)
		}
		t, err := dnsname.Parse(f[3])
		if err != nil {
			return nil, fmt.Errorf("value: SRV target: %w", err)
		}
		return &dns.SRV{Hdr: hdr(dns.TypeSRV), Priority: nums[0], Weight: nums[1], Port: nums[2], Target: dns.Fqdn(t.String())}, nil
	default:
		return nil, fmt.Errorf("type %q: want A, AAAA, CNAME, TXT or SRV", r.Type)
	}
}
