// Package dnsname owns airlock's one host-name type: a normalized,
// validated fully qualified domain name (Name), and the wildcard patterns
// that policy rules match names with (Pattern).
//
// Every name that reaches a policy decision — a TLS SNI, an HTTP Host, a
// CONNECT target, a DNS question, a rule's target — goes through Parse, so
// comparisons elsewhere are plain string equality on a canonical form:
// lowercase ASCII, no trailing dot, RFC 1035/1123 label rules. Parse refuses
// anything an address parser could read as an IPv4 literal, so an IP never
// passes for a name. ParseHost is Parse for RFC 1123 host names (no '_',
// no trailing dot): oci's registry hosts and the config's listen hosts.
//
// Pattern follows Azure Firewall's application-rule semantics for target
// FQDNs: "name" matches that name only; "*.suffix" matches every name with
// one or more labels in front of suffix but not suffix itself; "*" matches
// every name. No other wildcard form is accepted.
//
// The package is a leaf: standard library only, no I/O, no state. Name and
// Pattern are immutable values, comparable with ==, usable as map keys and
// safe for concurrent use. Both parsers take untrusted input and are fuzzed.
package dnsname
