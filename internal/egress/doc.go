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
// read are replayed, then the relay engine (internal/relay) copies both
// ways between the two *net.TCPConn (spliced on Linux) with half-close and
// reports the bytes (relay.Stats) → one decision record
// (slog, JSON) and metrics when the flow ends; a denied flow ends at once.
//
// Concurrency: a Server is safe for concurrent use. Each accepted
// connection has its own goroutine until its tunnel is established. The
// tunnel then goes to the Server's relay.Engine, whose goroutines exist
// only while a direction is busy: a direction idle for relay.HotIdle
// (100 ms) parks its socket in the engine's epoll set (Linux) and its
// goroutine ends, and the engine starts one again when bytes arrive
// (elsewhere than Linux each tunnel keeps two goroutines). An
// explicit-proxy tunnel's record is written by whichever goroutine ends
// it; transparent, L4 and DNAT handlers wait for their tunnel. The policy
// is an atomic pointer: SetPolicy affects flows decided after it;
// established tunnels are never re-decided. Shutdown closes the
// listeners, waits for tracked flows until its context ends, then closes
// every tracked connection and kicks the relay engine so that parked
// tunnels see the close. New does no I/O; Start (start.go) binds every
// configured listener (proxy, transparent, l4 TCP and UDP, one per DNAT
// rule address) and returns once all are bound, or closes them and fails
// naming the one that could not be; Failed reports a listener's error that
// came before Shutdown. There is no package-level mutable state.
//
// UDP (udp.go): the L4 listener's UDP socket (TPROXY, original
// destination from IP_ORIGDSTADDR / IPV6_ORIGDSTADDR) and the UDP DNAT
// listeners hand each datagram to a flow table keyed by (client,
// destination). The first datagram decides the flow; an allowed flow gets
// a connected upstream socket and one goroutine relaying replies back
// (from a transparent socket bound to the original destination for L4,
// from the listener for DNAT) until gateway.udpIdleTimeout passes without
// a datagram; a denied flow is recorded at once (once per client address
// and destination in gateway.udpDenyTimeout) and remembered apart as
// long, holding no flow slot (udp_deny.go). Admission (udp_table.go)
// bounds the table by gateway.udpMaxFlows and one client address by
// gateway.udpMaxFlowsPerSource, making room from the client's own idle
// flows, then from the heaviest client, so one client cannot take every
// slot. Only the listener's goroutine adds and evicts flows, each flow's
// goroutine removes its own. Shutdown closes the UDP sockets, which ends
// every UDP flow with its record.
package egress
