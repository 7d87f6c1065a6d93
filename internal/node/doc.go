// Package node makes a Linux host a network isolated node: an nftables
// ruleset for its outbound type (table inet airlock_node), containerd
// mirror configuration for its artifact source (hosts.toml per cache-rule
// upstream, config_path in config.toml), its resolver pointed at airlock
// DNS, and for userDefinedRouting the default route via the gateway host.
// It owns apply, status and reset. The ruleset keeps the node apart from
// its pods: the output chain (the node) alone accepts
// node.hostAllowedAddresses and the neighbour discovery and MLD its stack
// needs; the forward chain (pods) drops link-local destinations unless
// node.podLinkLocalAccess is Allowed; both end in the chain both may use.
//
// Data flow: Input (the node section, the registry's cache rules and TLS)
// → plan (pure: rendered ruleset and file contents, computed from the input
// and the files under Root, no network) → Apply, a transaction: stage every
// file as a temporary file next to its target and back up what it
// replaces, check the ruleset with `nft -c`, then load it (`nft -f`, one
// atomic transaction), rename files into place, set the route and save
// State; a failed step undoes the steps done. State (under Root, in
// /var/lib/airlock/node) is what Status compares with the host and what
// Reset undoes.
//
// Every file lives under Root; packet rules and routes go through a
// hostfw.Runner (nft, ip) in the caller's network namespace, so tests
// inject hostfwtest.Fake or run the real commands inside a namespace.
//
// Agent (agent.go, drift.go) is the long-lived form: it applies, then
// every interval compares the node with what that apply wrote (the table
// listing rule by rule, files, resolver, route, state) and applies again
// on drift, with metrics and a readiness for a DaemonSet.
//
// Concurrency: a Node is not safe for concurrent use, and two processes
// applying to one root at once are not coordinated; apply runs once at
// boot (deploy/airlock-node.service), by hand, or from one Agent's
// goroutine.
package node
