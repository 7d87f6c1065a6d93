package dnsserver

import "context"

// Start binds cfg.Listen over UDP (dns.readers sockets) and TCP (the same port; with port 0, a
// free one) and returns once both serve; the server then answers in the
// background until Shutdown, which drains queries in flight until its
// context ends (airlock serve: --grace). ctx ending stops serving at once.
// An error that ends serving before Shutdown is delivered on Failed.
func (s *Server) Start(ctx context.Context) error {
	pcs, ln, err := listenReaders(s.cfg.Listen, s.readers)
	if err != nil {
		return err
	}
	errc, err := s.start(pcs, ln)
	if err != nil {
		for _, pc := range pcs {
			pc.Close()
		}
		ln.Close()
		return err
	}
	go func() {
		select {
		case <-ctx.Done():
			s.Shutdown(ctx)
		case err := <-errc:
			if err != nil {
				s.failed <- err
			}
		}
	}()
	return nil
}

// Failed receives the error that ended serving before Shutdown (at most
// one); nothing after a clean Shutdown.
func (s *Server) Failed() <-chan error { return s.failed }
