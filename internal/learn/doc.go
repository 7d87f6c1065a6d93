// Package learn turns airlock's decision records into a policy proposal:
// `airlock policy learn` reads the JSON lines the gateway ("egress
// decision") and the DNS server ("dns decision") log, keeps what was denied
// (or would have been, in report mode) and proposes the smallest set of
// allow rules that lets exactly that through, each rule with its evidence.
//
// Data flow: ParseRecord turns one log line into a Record (ErrSkip for
// lines that are not decision records); a Learner aggregates Records into
// per-key evidence, where a key is (source group, name or destination
// address, port, protocol); Proposal builds rules from the evidence
// (built-in FQDN tags, `*.suffix` collapsing by registrable domain, network
// rules for flows without a name) and WriteYAML renders them with the
// evidence as comments. Merge adds a proposal to an existing policy,
// leaving out what that policy already allows.
//
// Memory grows with the number of distinct keys, never with the number of
// records: the Learner keeps at most Options.MaxKeys keys and counts the
// records it had to drop beyond that.
//
// Concurrency: a Learner is not safe for concurrent use; feed it from one
// goroutine. ParseRecord and the Proposal's methods are pure.
package learn
