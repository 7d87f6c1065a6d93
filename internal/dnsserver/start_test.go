package dnsserver

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestStartShutdownHonoursDeadline: a query stuck on a forwarder that
// never answers holds Shutdown only until the deadline of its context
// (airlock serve's --grace), not the forwarder timeout nor a fixed drain.
func TestStartShutdownHonoursDeadline(t *testing.T) {
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	cfg := defaults(dead.LocalAddr().String())
	cfg.ForwarderTimeout = time.Hour
	cfg.Listen = "127.0.0.1:0"
	srv, err := New(cfg, Deps{Policy: testPolicy(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("Start = %v, want nil", err)
	}
	if srv.Addr() == nil {
		t.Fatalf("Addr() = nil after Start, want the bound address")
	}
	go func() {
		m := new(dns.Msg)
		m.SetQuestion("www.allowed.test.", dns.TypeA)
		(&dns.Client{Timeout: time.Hour}).Exchange(m, srv.Addr().String())
	}()
	// The query is in flight once it reached the forwarder.
	buf := make([]byte, 512)
	if _, _, err := dead.ReadFrom(buf); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a query in flight = %v, want the context's deadline exceeded", err)
	}
	select {
	case err := <-srv.Failed():
		t.Errorf("Failed after Shutdown = %v, want nothing", err)
	default:
	}
}

func TestStartIdleShutdown(t *testing.T) {
	cfg := defaults("127.0.0.1:9")
	cfg.Listen = "127.0.0.1:0"
	srv, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("Start = %v, want nil", err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	if c, err := net.Dial("tcp", srv.Addr().String()); err == nil {
		c.Close()
		t.Errorf("TCP %s still accepts after Shutdown, want it closed", srv.Addr())
	}
}

func TestStartBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := defaults("127.0.0.1:9")
	cfg.Listen = ln.Addr().String()
	srv, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "dns listen tcp "+cfg.Listen) {
		t.Errorf("Start on a busy port = %v, want dns listen tcp %s: …", err, cfg.Listen)
	}
}
