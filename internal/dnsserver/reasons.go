package dnsserver

import "github.com/airlockdev/airlock/internal/policy"

// DNS-specific decision reasons, beside policy's table (rule_allow,
// rule_deny, no_match, name_invalid, malformed). Every query's decision is one
// policy.Decision carrying one of them; docs/dns.md lists them all.
const (
	// ReasonPrivateZone (allow): the name is inside a dns.privateZones zone.
	ReasonPrivateZone policy.Reason = "private_zone"
	// ReasonAllowNames (allow): no policy rule allowed the name, a
	// dns.allowNames pattern did.
	ReasonAllowNames policy.Reason = "allow_names"
	// ReasonQTypeDenied (deny): the query type is not in allowQueryTypes.
	ReasonQTypeDenied policy.Reason = "qtype_denied"
	// ReasonRebinding (deny): an allowed public name was answered with a
	// loopback, link-local, private or special address outside
	// gateway.allowedInternalRanges.
	ReasonRebinding policy.Reason = "rebinding"
	// ReasonDoHCanary (deny): the DoH canary use-application-dns.net, always
	// NXDOMAIN so browsers keep their DNS here.
	ReasonDoHCanary policy.Reason = "doh_canary"
)
