// Package storagetest is the conformance suite of the storage contract
// (internal/storage), in the manner of distribution's storage driver
// testsuites: one set of checks that every storage.Store runs from its own
// tests — the local store over a temp dir, the pull-through cache for
// repositories outside its rules (Run) and inside a rule, where content
// comes from an upstream and writes are refused (RunReadOnly), and the
// object-storage backends to come.
//
// It is imported by _test.go files only. Each check gets a fresh store
// from the caller's constructor, so checks are independent and may run in
// any order; the suite holds no state between them.
package storagetest
