package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/policy"
)

func TestReloadKeepsTunnels(t *testing.T) {
	up := echoServer(t, "127.0.0.1:0", "up")
	g := allowedGateway(t, up)
	const n = 100
	target := fmt.Sprintf("allowed.test:%d", up.Port())
	type tun struct {
		c  interface{ Close() error }
		do func(msg string)
	}
	tuns := make([]tun, n)
	for i := range tuns {
		c, br, code, _ := connect(t, g.proxy, target)
		if code != 200 {
			t.Fatalf("tunnel %d: CONNECT = %d, want 200", i, code)
		}
		expectEcho(t, c, br, "up", "before")
		tuns[i] = tun{c, func(msg string) { expectEcho2(t, c, br, msg) }}
	}
	// Keep every tunnel carrying data while the policy is swapped to one
	// that denies everything.
	denyAll, err := policy.Compile(policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range tuns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				tuns[i].do(fmt.Sprintf("t%d-%d", i, k))
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	g.srv.SetPolicy(denyAll)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.Fatal("a tunnel failed across the reload")
	}
	for i := range tuns {
		tuns[i].do("after")
	}
	if _, _, code, body := connect(t, g.proxy, target); code != 403 {
		t.Errorf("new CONNECT after reload = %d %q, want 403", code, body)
	}
	if got := testutilGauge(g.m); got != n {
		t.Errorf("active tunnels = %v, want %d", got, n)
	}
	for i := range tuns {
		tuns[i].c.Close()
	}
}

func TestShutdownDrains(t *testing.T) {
	up := echoServer(t, "127.0.0.1:0", "up")
	g := allowedGateway(t, up)
	target := fmt.Sprintf("allowed.test:%d", up.Port())
	c, br, code, _ := connect(t, g.proxy, target)
	if code != 200 {
		t.Fatalf("CONNECT = %d", code)
	}
	expectEcho(t, c, br, "up", "one")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- g.srv.Shutdown(ctx)
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a tunnel was open", err)
	default:
	}
	expectEcho2(t, c, br, "still draining")
	c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown = %v, want nil after the tunnel ended", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the last tunnel ended")
	}
	if rec := g.logs.Wait(t, 1)[0]; rec["bytes_up"].(float64) == 0 {
		t.Errorf("drained flow record = %v, want bytes counted", rec)
	}
}

func TestShutdownDeadlineClosesTunnels(t *testing.T) {
	up := echoServer(t, "127.0.0.1:0", "up")
	g := allowedGateway(t, up)
	c, br, code, _ := connect(t, g.proxy, fmt.Sprintf("allowed.test:%d", up.Port()))
	if code != 200 {
		t.Fatalf("CONNECT = %d", code)
	}
	expectEcho(t, c, br, "up", "one")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := g.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want deadline exceeded", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(br); err != nil {
		t.Errorf("client read after forced shutdown: %v, want EOF", err)
	}
	g.logs.Wait(t, 1)
}
