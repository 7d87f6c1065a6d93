package policy

import (
	"net/netip"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// Verdict is allow or deny.
type Verdict string

// Verdicts.
const (
	VerdictAllow Verdict = "allow"
	VerdictDeny  Verdict = "deny"
)

// Decision is the one value every allow or deny is: logged once per flow or
// DNS question, counted in metrics, printed by explain.
type Decision struct {
	Verdict Verdict `json:"verdict"`
	Reason  Reason  `json:"reason"`
	// Type is the type of the rule that decided: dnat, network or
	// application; empty when no rule did. The gateway needs it: an
	// application allow means "resolve the name and dial that", a network
	// allow "dial the original destination".
	Type       CollectionType `json:"type,omitempty"`
	Group      string         `json:"group,omitempty"`
	Collection string         `json:"collection,omitempty"`
	Rule       string         `json:"rule,omitempty"`
}

// Allowed reports whether the verdict is allow.
func (d Decision) Allowed() bool { return d.Verdict == VerdictAllow }

// Deny returns a deny Decision with the given reason and no rule, for the
// checks callers make outside the rules (a malformed ClientHello, an
// internal address).
func Deny(reason Reason) Decision {
	return Decision{Verdict: VerdictDeny, Reason: reason}
}

// Flow is what the gateway knows about a connection when it asks Decide.
type Flow struct {
	// Src is the client address. IPv4-mapped IPv6 addresses are treated as
	// IPv4.
	Src netip.Addr
	// Dst is the original destination (for DNAT, the listen address).
	Dst netip.AddrPort
	// Proto is tcp, udp or icmp; ICMP flows match rules on protocol,
	// addresses and names, never on ports.
	Proto Proto
	// App says whether the gateway read a TLS ClientHello (https) or an
	// HTTP request head (http) from a TCP flow; only then are application
	// rules tried.
	App App
	// Name is the SNI, the HTTP host or the CONNECT name; zero when there is
	// none. Application rules match it.
	Name dnsname.Name
	// DstNames are the names airlock DNS answered with Dst's address (still
	// within their TTL and grace). FQDN network rules match them.
	DstNames []dnsname.Name
}
