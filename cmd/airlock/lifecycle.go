package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/airlockdev/airlock/internal/admin"
	"github.com/airlockdev/airlock/internal/cache"
	"github.com/airlockdev/airlock/internal/config"
	"github.com/airlockdev/airlock/internal/dnsserver"
	"github.com/airlockdev/airlock/internal/egress"
	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/registry"
)

// component is the one face of everything `airlock serve` runs: built
// without I/O by its package's New, started with a context (listeners are
// bound before Start returns, serving continues in the background),
// drained by Shutdown until its context ends (--grace). Failed delivers an
// error that ended serving before Shutdown (a nil channel never does).
type component interface {
	Start(ctx context.Context) error
	Shutdown(ctx context.Context) error
	Failed() <-chan error
}

var (
	_ component = (*registry.Server)(nil)
	_ component = (*cache.Jobs)(nil)
	_ component = (*dnsserver.Server)(nil)
	_ component = (*egress.Server)(nil)
	_ component = (*admin.Server)(nil)
)

// unit is a component as serve runs it: its name (logs, /readyz) and
// how a re-read config reaches it.
type unit struct {
	name string
	c    component
	// reload applies next to the running component; nil: nothing of it
	// changes without a restart. An error keeps its running config and
	// stops the reload there.
	reload func(next *nextConfig) error
}

// nextConfig is a re-read config file on its way to the components,
// with the policy compiled once for all of them.
type nextConfig struct {
	*config.File
	log      *slog.Logger
	compiled bool
	pol      *policy.Policy
	polErr   error
}

// policy compiles next's policy on first use and logs its warnings once.
func (n *nextConfig) policy() (*policy.Policy, error) {
	if !n.compiled {
		n.compiled = true
		n.pol, n.polErr = compilePolicy(n.File, n.log)
	}
	return n.pol, n.polErr
}

// startAll starts us in order. When one fails, those already started are
// shut down in reverse order within grace and its error is returned.
// ready is told each unit that started.
func startAll(ctx context.Context, us []unit, grace time.Duration, ready func(name string), log *slog.Logger) error {
	for i, u := range us {
		if err := u.c.Start(ctx); err != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
			defer cancel()
			shutdownAll(sctx, us[:i], log)
			return err
		}
		ready(u.name)
	}
	return nil
}

// shutdownAll drains us in reverse start order, all within ctx's deadline
// (--grace): a component is shut down once those started after it are.
func shutdownAll(ctx context.Context, us []unit, log *slog.Logger) {
	for i := len(us) - 1; i >= 0; i-- {
		if err := us[i].c.Shutdown(ctx); err != nil {
			log.Warn("shutdown did not drain in time", "component", us[i].name, "err", err)
		}
	}
}

// failures delivers the first error of any unit's Failed, named after the
// unit, until ctx ends.
func failures(ctx context.Context, us []unit) <-chan error {
	out := make(chan error, 1)
	for _, u := range us {
		ch := u.c.Failed()
		if ch == nil {
			continue
		}
		go func() {
			select {
			case err := <-ch:
				select {
				case out <- fmt.Errorf("%s: %w", u.name, err):
				default:
				}
			case <-ctx.Done():
			}
		}()
	}
	return out
}

// reloadAll hands next to every unit that reloads, in start order; the
// first error is logged and ends the reload (the units after it keep
// their running config). It reports whether every unit took next.
func reloadAll(us []unit, next *nextConfig, log *slog.Logger) bool {
	for _, u := range us {
		if u.reload == nil {
			continue
		}
		if err := u.reload(next); err != nil {
			if next.polErr != nil && errors.Is(err, next.polErr) {
				log.Error("reload: policy invalid, the gateway and DNS keep the running policy", "err", err)
			} else {
				log.Error("reload: "+u.name+" kept its running config", "err", err)
			}
			return false
		}
	}
	return true
}
