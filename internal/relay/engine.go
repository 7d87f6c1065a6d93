package relay

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// HotIdle is how long a direction waits for bytes in Go's network poller
// before its socket parks in the Engine's poller and its goroutine ends.
// Short, so that tunnels opened in a burst do not all hold goroutine
// stacks at once (freed stacks stay in the process's memory for a while);
// long enough that a request and its answer on a short-lived tunnel never
// pay the poller's extra system calls (registration, epoll_wait).
const HotIdle = 100 * time.Millisecond

// Stats counts the bytes a tunnel relayed.
type Stats struct {
	Up   int64 // client to upstream
	Down int64 // upstream to client
}

// Engine relays tunnels. It owns the poller that holds idle tunnels,
// created with the first tunnel.
type Engine struct {
	log *slog.Logger

	mu   sync.Mutex
	p    *poller
	pErr error // set once the poller failed or was closed: relay with goroutines
}

// New returns an Engine that logs to log (nil: discarded). It does no I/O.
func New(log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{log: log}
}

// Start relays between client and upstream. It may copy on the calling
// goroutine while the tunnel is busy (the downstream direction's hot
// phase) and returns at the latest when that direction goes idle. done
// runs once, after both directions ended and both connections are
// closed, on the goroutine that ended the tunnel (possibly before Start
// returns). Nothing may wrap the connections: Start splices between them.
func (e *Engine) Start(client, upstream *net.TCPConn, done func(Stats)) {
	p := e.poller()
	if p == nil {
		go func() { done(pair(client, upstream)) }()
		return
	}
	p.start(client, upstream, done)
}

// Kick wakes every tunnel the poller holds. Sockets closed elsewhere
// (a server's Shutdown closing its connections at its deadline) leave the
// epoll set without an event; after Kick each such tunnel sees the close
// and ends.
func (e *Engine) Kick() {
	e.mu.Lock()
	p := e.p
	e.mu.Unlock()
	if p != nil {
		p.kickAll()
	}
}

// Close stops the poller. Tunnels it still holds are not ended: call it
// once every tunnel ended. Tunnels started afterwards relay with two
// goroutines each.
func (e *Engine) Close() {
	e.mu.Lock()
	p := e.p
	e.p, e.pErr = nil, errClosed
	e.mu.Unlock()
	if p != nil {
		p.close()
	}
}

// poller returns the poller, created on first use; nil when it cannot be
// had (then tunnels relay with goroutines).
func (e *Engine) poller() *poller {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.p == nil && e.pErr == nil {
		e.p, e.pErr = newPoller()
		if e.pErr != nil {
			e.log.Warn("egress tunnels relay without the poller", keyError, e.pErr.Error())
		}
	}
	return e.p
}
