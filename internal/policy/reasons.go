package policy

// Reason is the stable, snake_case code of why a Decision was made. Logs,
// metrics, explain output and the explicit proxy's 403 body carry it; the
// codes and their meanings are the table below and docs/policy.md.
type Reason string

// Reasons. Policy sets the first five; the gateway and the DNS server set
// the others when they decide before or after asking the policy. This is
// the one table of decision reasons: the DNS server's own codes
// (private_zone … doh_canary) live here too, not in dnsserver.
const (
	// ReasonRuleAllow: a rule in an allow collection matched.
	ReasonRuleAllow Reason = "rule_allow"
	// ReasonRuleDeny: a rule in a deny collection matched.
	ReasonRuleDeny Reason = "rule_deny"
	// ReasonNoMatch: no rule matched; the default is deny.
	ReasonNoMatch Reason = "no_match"
	// ReasonSNIMissing: a TLS flow without SNI matched no network rule;
	// application rules need a name.
	ReasonSNIMissing Reason = "sni_missing"
	// ReasonHostMissing: an HTTP flow without a host matched no network
	// rule; application rules need a name.
	ReasonHostMissing Reason = "host_missing"
	// ReasonNameInvalid: the SNI, Host or CONNECT name is not a valid host
	// name (dnsname.Parse refused it).
	ReasonNameInvalid Reason = "name_invalid"
	// ReasonProtocolUnknown: the first bytes were neither a TLS ClientHello
	// nor an HTTP/1.x request, on a port only application rules allow.
	ReasonProtocolUnknown Reason = "protocol_unknown"
	// ReasonMalformed: a malformed or oversized ClientHello or request head.
	ReasonMalformed Reason = "malformed"
	// ReasonInternalAddress: an allowed name resolved only to loopback,
	// link-local (metadata), private or other special addresses not listed
	// in gateway.allowedInternalRanges.
	ReasonInternalAddress Reason = "internal_address"
	// ReasonIPv6Disabled: an IPv6 destination while gateway.allowIPv6 is
	// false.
	ReasonIPv6Disabled Reason = "ipv6_disabled"

	// ReasonPrivateZone (DNS, allow): the name is inside a dns.privateZones
	// zone.
	ReasonPrivateZone Reason = "private_zone"
	// ReasonAllowNames (DNS, allow): no policy rule allowed the name, a
	// dns.allowNames pattern did.
	ReasonAllowNames Reason = "allow_names"
	// ReasonQTypeDenied (DNS, deny): the query type is not in
	// dns.allowQueryTypes.
	ReasonQTypeDenied Reason = "qtype_denied"
	// ReasonRebinding (DNS, deny): an allowed public name was answered with
	// a loopback, link-local, private or special address outside
	// gateway.allowedInternalRanges.
	ReasonRebinding Reason = "rebinding"
	// ReasonDoHCanary (DNS, deny): the DoH canary use-application-dns.net,
	// always NXDOMAIN so browsers keep their DNS here.
	ReasonDoHCanary Reason = "doh_canary"
)

// ReasonInfo documents one reason.
type ReasonInfo struct {
	Reason  Reason
	Verdict Verdict // the verdict that goes with it
	Meaning string
}

// Reasons returns the reason table, the one list of decision reasons.
func Reasons() []ReasonInfo {
	return []ReasonInfo{
		{ReasonRuleAllow, VerdictAllow, "a rule in an allow collection matched"},
		{ReasonRuleDeny, VerdictDeny, "a rule in a deny collection matched"},
		{ReasonNoMatch, VerdictDeny, "no rule matched; the default is deny"},
		{ReasonSNIMissing, VerdictDeny, "TLS without SNI: no network rule matched, and application rules need a name"},
		{ReasonHostMissing, VerdictDeny, "HTTP without a host: no network rule matched, and application rules need a name"},
		{ReasonNameInvalid, VerdictDeny, "the SNI, Host or CONNECT name is not a valid host name"},
		{ReasonProtocolUnknown, VerdictDeny, "neither a TLS ClientHello nor an HTTP/1.x request where only application rules apply"},
		{ReasonMalformed, VerdictDeny, "a malformed or oversized ClientHello or HTTP request head"},
		{ReasonInternalAddress, VerdictDeny, "the name resolved only to loopback, link-local, private or special addresses not in gateway.allowedInternalRanges"},
		{ReasonIPv6Disabled, VerdictDeny, "an IPv6 destination while gateway.allowIPv6 is false"},
		{ReasonPrivateZone, VerdictAllow, "DNS: the name is inside a private zone"},
		{ReasonAllowNames, VerdictAllow, "DNS: no rule matched; dns.allowNames lists the name"},
		{ReasonQTypeDenied, VerdictDeny, "DNS: the query type is not in dns.allowQueryTypes"},
		{ReasonRebinding, VerdictDeny, "DNS: an allowed public name was answered with an internal or special address"},
		{ReasonDoHCanary, VerdictDeny, "DNS: the DoH canary use-application-dns.net, always NXDOMAIN"},
	}
}

// Meaning returns the table's text for r, or "" for a code not in it.
func (r Reason) Meaning() string {
	for _, i := range Reasons() {
		if i.Reason == r {
			return i.Meaning
		}
	}
	return ""
}
