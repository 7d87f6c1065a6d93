// Package dnsserver is airlock's DNS server: the policy point for names
// (DESIGN §4 "DNS answers"). It owns the dns section of airlock.yaml
// (Config), the private zones, the answer cache, forwarding to upstream
// resolvers, and the name→address observations the gateway matches FQDN
// network rules against (Observations).
//
// # Data flow
//
// Each query, over UDP or TCP (github.com/miekg/dns), goes through
// Server.handle, which produces one policy.Decision, one answer, one
// decision record (slog) and one count (metrics):
//
//  1. Malformed queries (not one question of class IN with opcode QUERY)
//     get FORMERR, NOTIMP or REFUSED; names dnsname.Parse refuses get
//     blockedRcode (name_invalid); use-application-dns.net gets NXDOMAIN
//     (doh_canary).
//  2. A name inside a private zone is answered authoritatively
//     (private_zone), whatever its type.
//  3. Otherwise the policy decides (policy.AllowsName for the client's
//     address); a name no rule matched is still allowed by dns.allowNames
//     (allow_names). Denied: blockedRcode — except with dns.mode report,
//     where a name the rules deny (no_match, rule_deny) is answered as if
//     allowed and logged with would_deny (the checks of steps 1, 4 and 6
//     still deny). Every question's decision is counted in policy.Hits.
//  4. HTTPS and SVCB queries get an empty answer (ECH keys never reach the
//     client); other types outside allowQueryTypes are denied
//     (qtype_denied); AAAA gets an empty answer unless IPv6 is allowed.
//  5. The answer comes from the cache, else from the forwarders (in order,
//     failover on timeouts and SERVFAIL/REFUSED, concurrent identical misses
//     coalesced), else a stale cache entry (up to staleFor past its TTL),
//     else SERVFAIL.
//  6. filter walks the CNAME chain: every name in it is decided like the
//     question (a chain into a denied name is denied with the deciding
//     name logged); a chain entering a private zone is finished by the
//     zone; only the chain's records of the asked type are kept; an
//     address for a public name that is not public in netclass (the
//     classification the gateway's dialer and the upstream client share)
//     is refused (rebinding) unless gateway.allowedInternalRanges lists it.
//  7. finish strips HTTPS/SVCB (and AAAA unless allowed) records, then
//     records every A/AAAA with every chain name in Observations (TTL plus
//     observationGrace) before the answer is written; UDP answers are
//     truncated to the client's EDNS0 size with TC set.
//
// The cache holds upstream answers before filtering, because the decision
// depends on the client and on the policy in force.
//
// # Fast path (UDP)
//
// One goroutine (udpFront) owns the UDP socket and reads it in batches
// (recvmmsg on Linux). For a query of the common shape (one question,
// optionally an OPT record without options: fastKey) it looks up the
// answer the full path last produced for the same client, flags, EDNS0
// payload size and question spelling from a fresh cache entry (fastCache,
// filled by ServeDNS through Server.remember). A hit is replayed without
// decoding anything: the decision is counted (and logged per logAllowed),
// its addresses are recorded in Observations, then the stored packed
// answer gets the query's ID and its TTLs counted down to what the full
// path would give at that moment, and the batch's answers leave in one
// sendmmsg. An entry is dropped when its cache entry expires, and never
// replayed under another policy than the one it was decided under
// (SetPolicy also empties the table). Every other packet is relayed, with
// its client's address, to the miekg/dns server through frontConn, so the
// full path (decoding, FORMERR and NOTIMP, ServeDNS) is unchanged. TCP
// never takes the fast path.
//
// # Concurrency
//
// ServeDNS runs on many goroutines at once (one per relayed UDP packet, one
// per TCP connection); replays run on the UDP reader goroutine. The policy
// is an atomic pointer swapped by SetPolicy, read once per query; the
// cache, the fast-path table, the forwarders' health, the sampler and
// Observations each have their own mutex and are never held across I/O.
// Configuration is immutable after New, which does no I/O. Start binds
// dns.listen (UDP and TCP) and returns once both serve; Shutdown stops both
// listeners and waits for queries in flight until its context ends (airlock
// serve passes --grace); Failed reports a serving error that came before
// Shutdown. Serve(ctx, pc, ln) is the blocking form on sockets the caller
// opened: ctx ending stops it without a drain.
package dnsserver
