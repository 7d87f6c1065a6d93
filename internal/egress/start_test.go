package egress

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/testkit/porttest"
)

func TestStartBindsThenShutdown(t *testing.T) {
	cfg := Config{ProxyListen: porttest.FreeAddr(t), TransparentListen: porttest.FreeAddr(t)}
	cfg.SetDefaults()
	s, err := New(&cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start = %v, want nil", err)
	}
	for _, addr := range []string{cfg.ProxyListen, cfg.TransparentListen} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %s after Start: %v, want it bound", addr, err)
		}
		c.Close()
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	select {
	case err := <-s.Failed():
		t.Errorf("Failed after a clean Shutdown = %v, want nothing", err)
	default:
	}
}

// TestStartBusyPortClosesTheOthers: when one listener cannot be bound,
// Start fails naming it, and the ones it had bound are free again.
func TestStartBusyPortClosesTheOthers(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := Config{ProxyListen: porttest.FreeAddr(t), TransparentListen: busy.Addr().String()}
	cfg.SetDefaults()
	s, err := New(&cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "gateway: listen on "+cfg.TransparentListen) {
		t.Fatalf("Start with transparentListen busy = %v, want gateway: listen on %s: …", err, cfg.TransparentListen)
	}
	ln, err := net.Listen("tcp", cfg.ProxyListen)
	if err != nil {
		t.Errorf("proxyListen %s after the failed Start: %v, want it released", cfg.ProxyListen, err)
	} else {
		ln.Close()
	}
}
