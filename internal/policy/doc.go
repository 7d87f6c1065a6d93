// Package policy owns airlock's egress rules and the decisions made from
// them. It is the Azure Firewall rule model (DESIGN §3): rule collection
// groups, each holding rule collections of one type (network, application
// or dnat) with an action (allow or deny), each holding rules. Rules are
// processed DNAT first, then network, then application; within a type by
// group priority, then collection priority, then rule order; the first rule
// that matches decides, and no match denies.
//
// Data flow: the config package decodes a Config and calls Validate, which
// reports every problem with its path. Compile turns a valid Config into an
// immutable *Policy, expanding FQDN tags (embedded, versioned data under
// tags/, each entry citing its public source) and indexing the rules
// (index.go: first match found among the few candidates a flow's keys
// select; the linear evaluator of decide.go is the reference the tests
// compare it with, and what explain uses). The gateway asks Decide for
// each flow and DNAT for each inbound connection; the DNS server asks
// AllowsName for each question; `airlock policy explain` prints an
// Explanation. Each answer is one Decision value: verdict, reason (from the
// one reason table, reasons.go), and the group, collection and rule that
// decided.
//
// The package is pure: no I/O, no logging, no clocks, no global mutable
// state; Hits, the rule hit counter the servers feed, is the one value that
// changes, and it takes its times from the caller. A *Policy never changes after Compile and is safe for concurrent
// use; a reload compiles a new one and swaps the pointer.
package policy
