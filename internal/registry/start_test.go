package registry

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/blobstore"
)

func startTestServer(t *testing.T, listen string) *Server {
	t.Helper()
	bs, err := blobstore.Open(t.TempDir(), blobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(&Config{Listen: listen}, Deps{Store: NewLocalStore(bs)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStartServesUntilShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := startTestServer(t, addr)
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start = %v, want nil", err)
	}
	resp, err := http.Get("http://" + addr + "/v2/")
	if err != nil {
		t.Fatalf("GET /v2/ after Start: %v", err)
	}
	resp.Body.Close()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	select {
	case err := <-s.Failed():
		t.Errorf("Failed after a clean Shutdown = %v, want nothing", err)
	default:
	}
	if _, err := http.Get("http://" + addr + "/v2/"); err == nil {
		t.Errorf("GET /v2/ after Shutdown succeeded, want a refused connection")
	}
}

// TestShutdownRightAfterStart: the server Start returns is the one
// Shutdown stops, however soon it comes: its port is released.
func TestShutdownRightAfterStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := startTestServer(t, addr)
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start = %v, want nil", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	// The serving goroutine may not have run yet: it must close the
	// listener as soon as it does.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts 10 s after Shutdown, want it closed", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := startTestServer(t, ln.Addr().String())
	err = s.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "registry: listen on "+ln.Addr().String()) {
		t.Errorf("Start on a busy port = %v, want registry: listen on %s: …", err, ln.Addr())
	}
}
