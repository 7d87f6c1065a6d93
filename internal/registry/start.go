package registry

import (
	"context"
	"fmt"
	"net"
)

// Start loads the TLS key pair (when configured), binds cfg.Listen and
// returns once it is bound; the registry then serves in the background
// until Shutdown. ctx is the parent of every request's context (its
// cancellation does not stop serving: Shutdown does). An error that ends
// serving before Shutdown is delivered on Failed.
func (s *Server) Start(ctx context.Context) error {
	if err := s.LoadTLS(&Config{TLS: s.tlsCfg}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.listen)
	if err != nil {
		return fmt.Errorf("registry: listen on %s: %w (is another process using it? set registry.listen)", s.listen, err)
	}
	srv, ln := s.prepare(ctx, ln) // before returning: a Shutdown from now on stops it
	go func() {
		if err := serveUntilShutdown(srv, ln); err != nil {
			s.failed <- fmt.Errorf("registry: %w", err)
		}
	}()
	return nil
}

// Failed receives the error that ended serving before Shutdown (at most
// one); nothing after a clean Shutdown.
func (s *Server) Failed() <-chan error { return s.failed }
