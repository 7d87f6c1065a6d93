package admin

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/testkit/porttest"
	"github.com/prometheus/client_golang/prometheus"
)

func TestStartServesUntilShutdown(t *testing.T) {
	addr := porttest.FreeAddr(t)
	s := New(Config{Listen: addr}, prometheus.NewRegistry(), nil)
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start = %v, want nil", err)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz after Start: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok\n" {
		t.Errorf("GET /healthz = %q, want %q", body, "ok\n")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	select {
	case err := <-s.Failed():
		t.Errorf("Failed after a clean Shutdown = %v, want nothing", err)
	default:
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Errorf("GET /healthz after Shutdown succeeded, want a refused connection")
	}
}

func TestStartBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := New(Config{Listen: ln.Addr().String()}, prometheus.NewRegistry(), nil)
	err = s.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "admin: listen on "+ln.Addr().String()) {
		t.Errorf("Start on a busy port = %v, want admin: listen on %s: …", err, ln.Addr())
	}
}
