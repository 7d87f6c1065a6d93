package main

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/airlockdev/airlock/internal/config"
)

// fakeComponent records its calls in a shared journal.
type fakeComponent struct {
	name     string
	journal  *[]string
	startErr error
	// drain blocks Shutdown until its context ends (a flow that never
	// finishes) when set.
	drain  bool
	failed chan error
	// shutdownDeadline is the deadline of the context Shutdown got.
	shutdownDeadline time.Time
}

var _ component = (*fakeComponent)(nil)

func (f *fakeComponent) Start(ctx context.Context) error {
	*f.journal = append(*f.journal, "start "+f.name)
	return f.startErr
}

func (f *fakeComponent) Shutdown(ctx context.Context) error {
	*f.journal = append(*f.journal, "shutdown "+f.name)
	f.shutdownDeadline, _ = ctx.Deadline()
	if f.drain {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (f *fakeComponent) Failed() <-chan error { return f.failed }

func fakeUnits(journal *[]string, names ...string) ([]unit, map[string]*fakeComponent) {
	byName := map[string]*fakeComponent{}
	var us []unit
	for _, n := range names {
		f := &fakeComponent{name: n, journal: journal}
		byName[n] = f
		us = append(us, unit{name: n, c: f})
	}
	return us, byName
}

func TestStartAllOrderAndShutdownReverse(t *testing.T) {
	var journal, ready []string
	us, _ := fakeUnits(&journal, "cache", "registry", "dns", "gateway", "admin")
	if err := startAll(context.Background(), us, time.Second, func(n string) { ready = append(ready, n) }, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("startAll = %v, want nil", err)
	}
	shutdownAll(context.Background(), us, slog.New(slog.DiscardHandler))
	want := []string{
		"start cache", "start registry", "start dns", "start gateway", "start admin",
		"shutdown admin", "shutdown gateway", "shutdown dns", "shutdown registry", "shutdown cache",
	}
	if diff := cmp.Diff(want, journal); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"cache", "registry", "dns", "gateway", "admin"}, ready); diff != "" {
		t.Errorf("ready (-want +got):\n%s", diff)
	}
}

func TestStartAllRollsBackOnFailure(t *testing.T) {
	var journal, ready []string
	us, byName := fakeUnits(&journal, "registry", "dns", "gateway", "admin")
	busy := errors.New("gateway: listen on 127.0.0.1:3128: address already in use")
	byName["gateway"].startErr = busy
	err := startAll(context.Background(), us, time.Minute, func(n string) { ready = append(ready, n) }, slog.New(slog.DiscardHandler))
	if !errors.Is(err, busy) {
		t.Fatalf("startAll = %v, want %v", err, busy)
	}
	want := []string{"start registry", "start dns", "start gateway", "shutdown dns", "shutdown registry"}
	if diff := cmp.Diff(want, journal); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"registry", "dns"}, ready); diff != "" {
		t.Errorf("ready (-want +got):\n%s", diff)
	}
	if byName["dns"].shutdownDeadline.IsZero() {
		t.Errorf("rollback Shutdown got a context without a deadline, want one of grace")
	}
}

// TestShutdownAllWithinGrace: a component that never drains holds the
// others only until the one deadline; every component gets the same one.
func TestShutdownAllWithinGrace(t *testing.T) {
	var journal []string
	us, byName := fakeUnits(&journal, "registry", "gateway", "admin")
	byName["gateway"].drain = true
	deadline := time.Now().Add(50 * time.Millisecond)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	shutdownAll(ctx, us, slog.New(slog.DiscardHandler))
	want := []string{"shutdown admin", "shutdown gateway", "shutdown registry"}
	if diff := cmp.Diff(want, journal); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	for name, f := range byName {
		if !f.shutdownDeadline.Equal(deadline) {
			t.Errorf("%s: Shutdown deadline = %v, want the grace deadline %v", name, f.shutdownDeadline, deadline)
		}
	}
}

func TestFailuresNamesTheComponent(t *testing.T) {
	var journal []string
	us, byName := fakeUnits(&journal, "registry", "dns")
	byName["dns"].failed = make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := failures(ctx, us)
	byName["dns"].failed <- errors.New("dns serve: socket closed")
	if err := <-ch; err == nil || err.Error() != "dns: dns serve: socket closed" {
		t.Errorf("failures = %v, want %q", err, "dns: dns serve: socket closed")
	}
}

func TestReloadAllFanOut(t *testing.T) {
	next := &nextConfig{File: &config.File{}, log: slog.New(slog.DiscardHandler)}
	next.compiled = true // the policy of an empty config: nil, no error
	var got []string
	rec := func(name string, err error) func(*nextConfig) error {
		return func(n *nextConfig) error {
			if n != next {
				t.Errorf("%s: reload got %p, want the one next config %p", name, n, next)
			}
			got = append(got, name)
			return err
		}
	}
	for _, tt := range []struct {
		name   string
		units  []unit
		wantOK bool
		want   []string
	}{
		{
			name:   "every reloader, in order; units without one skipped",
			units:  []unit{{name: "cache"}, {name: "registry", reload: rec("registry", nil)}, {name: "dns", reload: rec("dns", nil)}, {name: "gateway", reload: rec("gateway", nil)}, {name: "admin"}},
			wantOK: true,
			want:   []string{"registry", "dns", "gateway"},
		},
		{
			name:   "the first error stops the reload",
			units:  []unit{{name: "registry", reload: rec("registry", errors.New("switching TLS on or off needs a restart"))}, {name: "dns", reload: rec("dns", nil)}},
			wantOK: false,
			want:   []string{"registry"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			if ok := reloadAll(tt.units, next, slog.New(slog.DiscardHandler)); ok != tt.wantOK {
				t.Errorf("reloadAll = %v, want %v", ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("reloaded (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNextConfigPolicyCompiledOnce: the gateway and DNS share one compile
// of the re-read policy, and its error.
func TestNextConfigPolicyCompiledOnce(t *testing.T) {
	next := &nextConfig{File: &config.File{}, log: slog.New(slog.DiscardHandler)}
	p1, err1 := next.policy()
	p2, err2 := next.policy()
	if p1 != p2 || err1 != err2 {
		t.Errorf("policy() twice = (%p, %v), (%p, %v), want the same result", p1, err1, p2, err2)
	}
}
