package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// This file holds the parsers of the strings a rule is written with. Each
// returns an error whose text is the validation message (without the path).

// addrSet is a parsed list of sourceAddresses or destinationAddresses.
type addrSet struct {
	any      bool
	prefixes []netip.Prefix
}

func (s addrSet) contains(a netip.Addr) bool {
	if s.any {
		return true
	}
	for _, p := range s.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseAddress parses "*" (when star is true), an IP address or a CIDR.
// IPv4-mapped IPv6 addresses are stored as IPv4, as flows are; a CIDR must
// have no host bits set, so "10.0.0.1/8" is refused rather than silently
// widened.
func parseAddress(s string, star bool) (netip.Prefix, bool, error) {
	switch {
	case s == "":
		return netip.Prefix{}, false, fmt.Errorf("empty address")
	case s == "*":
		if !star {
			return netip.Prefix{}, false, fmt.Errorf(`"*" is not allowed here; want one IP address`)
		}
		return netip.Prefix{}, true, nil
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false, fmt.Errorf("%q: want an IP address, a CIDR or \"*\"", s)
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, false, fmt.Errorf("%q: an IPv4-mapped IPv6 prefix; write the IPv4 CIDR", s)
		}
		if p.Masked() != p {
			return netip.Prefix{}, false, fmt.Errorf("%q: host bits set; did you mean %s?", s, p.Masked())
		}
		return p, false, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false, fmt.Errorf("%q: want an IP address, a CIDR or \"*\"", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), false, nil
}

// portRange is an inclusive range of ports.
type portRange struct{ lo, hi uint16 }

func (r portRange) String() string {
	switch {
	case r.lo == 1 && r.hi == 65535:
		return "*"
	case r.lo == r.hi:
		return strconv.Itoa(int(r.lo))
	}
	return fmt.Sprintf("%d-%d", r.lo, r.hi)
}

// parsePorts parses "123", "1000-2000" or "*".
func parsePorts(s string) (portRange, error) {
	if s == "*" {
		return portRange{1, 65535}, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := parsePort(lo)
	if err != nil {
		return portRange{}, fmt.Errorf("%q: %v", s, err)
	}
	if !isRange {
		return portRange{a, a}, nil
	}
	b, err := parsePort(hi)
	if err != nil {
		return portRange{}, fmt.Errorf("%q: %v", s, err)
	}
	if a > b {
		return portRange{}, fmt.Errorf("%q: the range starts above its end", s)
	}
	return portRange{a, b}, nil
}

// parsePort parses a decimal port 1..65535.
func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 {
		if s == "" {
			return 0, fmt.Errorf(`want a port such as "123", a range such as "1000-2000", or "*"`)
		}
		return 0, fmt.Errorf("port out of range 1..65535")
	}
	v := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf(`want a port such as "123", a range such as "1000-2000", or "*"`)
		}
		v = v*10 + int(s[i]-'0')
	}
	if v < 1 || v > 65535 {
		return 0, fmt.Errorf("port out of range 1..65535")
	}
	return uint16(v), nil
}

// Proto is a flow's transport protocol.
type Proto uint8

// Transport protocols. The zero Proto matches no rule.
const (
	ProtoTCP Proto = iota + 1
	ProtoUDP
	ProtoICMP
)

// String returns "tcp", "udp", "icmp" or "none".
func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	}
	return "none"
}

// MarshalText returns String().
func (p Proto) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// ParseProto parses "tcp", "udp" or "icmp" (any case), as the CLI takes
// them.
func ParseProto(s string) (Proto, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return ProtoTCP, nil
	case "udp":
		return ProtoUDP, nil
	case "icmp":
		return ProtoICMP, nil
	}
	return 0, fmt.Errorf("protocol %q: want tcp, udp or icmp", s)
}

// protoSet is a set of Protos as a bit mask.
type protoSet uint8

func (s protoSet) has(p Proto) bool { return p != 0 && s&(1<<p) != 0 }

func (s protoSet) String() string {
	var names []string
	for _, p := range []Proto{ProtoTCP, ProtoUDP, ProtoICMP} {
		if s.has(p) {
			names = append(names, strings.ToUpper(p.String()))
		}
	}
	return "[" + strings.Join(names, " ") + "]"
}

// parseNetworkProto parses a network rule protocol: TCP, UDP, ICMP or Any.
// With dnat set only TCP and UDP are accepted.
func parseNetworkProto(s string, dnat bool) (protoSet, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return 1 << ProtoTCP, nil
	case "udp":
		return 1 << ProtoUDP, nil
	case "icmp":
		if !dnat {
			return 1 << ProtoICMP, nil
		}
	case "any":
		if !dnat {
			return 1<<ProtoTCP | 1<<ProtoUDP | 1<<ProtoICMP, nil
		}
	}
	if dnat {
		return 0, fmt.Errorf("%q: want TCP or UDP", s)
	}
	return 0, fmt.Errorf("%q: want TCP, UDP, ICMP or Any", s)
}

// App is the application protocol the gateway saw on a TCP flow.
type App uint8

// Application protocols.
const (
	AppNone  App = iota // not (yet) known to be HTTP or TLS
	AppHTTP             // an HTTP/1.x request head (Host)
	AppHTTPS            // a TLS ClientHello (SNI)
)

// String returns "none", "http" or "https".
func (a App) String() string {
	switch a {
	case AppHTTP:
		return "http"
	case AppHTTPS:
		return "https"
	}
	return "none"
}

// MarshalText returns String().
func (a App) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// appProto is one "http:PORT" or "https:PORT".
type appProto struct {
	app  App
	port uint16
}

func (p appProto) String() string { return p.app.String() + ":" + strconv.Itoa(int(p.port)) }

// parseAppProto parses "http:PORT" or "https:PORT" (scheme in any case).
func parseAppProto(s string) (appProto, error) {
	scheme, port, ok := strings.Cut(s, ":")
	var app App
	switch strings.ToLower(scheme) {
	case "http":
		app = AppHTTP
	case "https":
		app = AppHTTPS
	default:
		return appProto{}, fmt.Errorf("%q: want http:PORT or https:PORT", s)
	}
	if !ok {
		example := 80
		if app == AppHTTPS {
			example = 443
		}
		sch := strings.ToLower(scheme)
		return appProto{}, fmt.Errorf("%q: missing port; want %s:PORT, e.g. %s:%d", s, sch, sch, example)
	}
	p, err := parsePort(port)
	if err != nil {
		return appProto{}, fmt.Errorf("%q: %v", s, err)
	}
	return appProto{app, p}, nil
}

// parseTarget parses an application rule's target FQDN.
func parseTarget(s string) (dnsname.Pattern, error) {
	return dnsname.ParsePattern(s)
}

// parseExactName parses a network rule's destination FQDN: an exact name.
// Azure Firewall takes no wildcards in network rules; neither does airlock.
func parseExactName(s string) (dnsname.Name, error) {
	if strings.Contains(s, "*") {
		return dnsname.Name{}, fmt.Errorf("%q: network rules take exact names, no wildcards (as in Azure Firewall); use an application rule for %q", s, s)
	}
	return dnsname.Parse(s)
}
