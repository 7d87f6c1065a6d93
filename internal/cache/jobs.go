package cache

import (
	"context"
	"sync"
)

// Jobs is the cache's background work (today the quota enforcement, see
// Run) as a component with a start and a drain: Start launches it, and
// Shutdown stops it and waits for the job in progress until its context
// ends. A Store's Jobs may be started once.
type Jobs struct {
	s *Store

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// Jobs returns the store's background jobs, not yet started.
func (s *Store) Jobs() *Jobs { return &Jobs{s: s} }

// Start runs the background jobs until Shutdown or ctx ends; it does no
// I/O itself and returns at once.
func (j *Jobs) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	j.mu.Lock()
	j.cancel, j.done = cancel, done
	j.mu.Unlock()
	go func() {
		defer close(done)
		j.s.Run(ctx)
	}()
	return nil
}

// Shutdown stops the jobs and waits until the one in progress returns or
// ctx ends.
func (j *Jobs) Shutdown(ctx context.Context) error {
	j.mu.Lock()
	cancel, done := j.cancel, j.done
	j.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Failed never receives: the jobs log their errors and carry on.
func (j *Jobs) Failed() <-chan error { return nil }
