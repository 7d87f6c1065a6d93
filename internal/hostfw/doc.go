// Package hostfw runs the host firewall and routing commands airlock
// changes: nft for its own nftables tables, ip for routes and routing
// rules. It is shared by node (the node's isolation table, its default
// route) and egress (the gateway host's interception table and TPROXY
// policy routing).
//
// Data flow: a consumer renders a ruleset as text, checks it with NFT.Check
// (`nft -c -f -`, nothing changes), then loads it with NFT.Load (`nft -f -`,
// one atomic transaction); List and Counts read a live table back. Every
// command goes through a Runner, so tests inject a fake (hostfwtest.Fake)
// and e2e tests run the real commands inside a network namespace.
//
// Concurrency: Exec and NFT hold no state and are safe for concurrent
// use; the kernel, not this package, orders concurrent transactions.
package hostfw
