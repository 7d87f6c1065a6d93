// Package relay is airlock's TCP relay engine: it copies the bytes of an
// established tunnel both ways between two *net.TCPConn until both
// directions end, and reports how many it copied. The gateway (egress)
// decides, dials and records flows; it hands each tunnel to an Engine.
//
// Data flow per direction, on Linux: one copy step (copy_linux.go) reads
// what is queued on the source into a lent 16 KiB buffer and writes it
// on; a read that fills the buffer marks the direction bulk, and from
// then on each step splices exactly the bytes queued (SIOCINQ), so bulk
// bytes stay out of user space and no pipe pair is held between steps.
// EOF half-closes the other side (CloseWrite); an error closes both
// connections. When both directions have ended, both connections are
// closed and the tunnel's done callback runs once with its Stats.
//
// Concurrency: an Engine is safe for concurrent use. A direction starts
// hot: its goroutine waits for bytes in Go's network poller. After
// HotIdle without a byte it parks its socket in the Engine's poller (one
// edge-triggered epoll set, created with the first tunnel; poller_linux.go)
// and its goroutine ends; the poller starts a goroutine again when the
// socket has bytes, EOF or an error, which drains it and ends
// (tunnel_linux.go). An idle tunnel thus holds its two sockets and no
// goroutine. Without the poller (not Linux, epoll unavailable, or after
// Close) each tunnel has two goroutines copying until they end (pair.go).
// The package has no package-level mutable state.
package relay
