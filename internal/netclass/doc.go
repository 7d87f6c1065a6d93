// Package netclass is airlock's one classification of IP addresses:
// public, or one of the internal and special classes (unspecified,
// loopback, link-local and cloud metadata, private, shared CGNAT,
// multicast and broadcast, and the special IPv4 and IPv6 ranges, among
// them the IPv6 forms that embed or translate to an IPv4 address).
//
// Every component that must keep a name or a redirect from reaching an
// internal address asks this package and nothing else (DESIGN §4): the
// gateway's dialer (egress), the DNS rebinding filter (dnsserver) and the
// registry's upstream client (endpoints, redirects, token realms). A
// component that lets an operator open internal ranges
// (gateway.allowedInternalRanges, registry.upstreamAllowedInternalRanges)
// passes them to Allowed. Those lists are AllowedRanges, parsed once when
// the config is decoded (AllowedRange.UnmarshalText, ParseRange's rules);
// components get their Prefixes and never parse them again.
//
// It is a leaf: it imports only net/netip and holds no mutable state, so
// it is safe for concurrent use.
package netclass
