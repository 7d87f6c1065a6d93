// Package hostfwtest is a test double for hostfw.Runner: Fake stands in
// for nft and ip, keeping airlock's tables, routing rules and routes in
// memory, recording every call and failing the calls a test chooses. It
// is imported by tests only.
//
// Concurrency: a Fake is not safe for concurrent use; tests drive it from
// one goroutine.
package hostfwtest
