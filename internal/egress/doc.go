// Package egress is airlock's gateway: the explicit proxy (HTTP CONNECT and
// absolute-form plain HTTP on gateway.proxyListen) and the transparent
// listener (gateway.transparentListen, the target of the gateway host's
// nftables redirect of tcp/80 and tcp/443). It owns the one outbound
// Dialer, tunnel tracking, and the one decision record per flow.
//
// Data flow for a flow: accept → (transparent) original destination via
// SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST, refused when it is the listener
// itself → the name: the CONNECT or URL host (explicit), or the TLS SNI /
// HTTP Host read by sniff.ReadHead under gateway.headTimeout (transparent)
// → policy.Decide → in enforce mode a deny ends the flow (403 with the
// reason, or a close); in report mode it is logged as would_deny and the
// flow goes on → Dialer: an application allow resolves the name itself and
// dials that address, never the client's original destination; a network
// allow dials the address the rule matched; a report-mode flow without a
// name dials its original destination. The Dialer's address checks
// (internal_address, ipv6_disabled) apply in both modes → the bytes already
// read are replayed, then relay copies both ways between the two
// *net.TCPConn (spliced on Linux) with half-close → one decision record
// (slog, JSON) and metrics when the flow ends; a denied flow ends at once.
//
// Concurrency: a Server is safe for concurrent use. Each accepted
// connection has its own goroutine plus one for the upstream direction of
// its relay. The policy is an atomic pointer: SetPolicy affects flows
// decided after it; established tunnels are never re-decided. Shutdown
// closes the listeners, waits for tracked flows until its context ends,
// then closes every tracked connection. New does no I/O; there is no
// package-level mutable state.
//
// Not here yet: L4 forwarding for network rules (TPROXY, UDP), DNAT
// listeners, FQDN network rules fed by airlock DNS (Flow.DstNames), and
// `airlock gateway rules`.
package egress
