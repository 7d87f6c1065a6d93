package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/airlockdev/airlock/internal/admin"
	"github.com/airlockdev/airlock/internal/cache"
	"github.com/airlockdev/airlock/internal/config"
	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/upstream"
)

// console gathers what the admin listener's console shows: the decision
// records teed from the process logger, the running policy (swapped on
// reload), the cache and its upstream client. Its methods are safe for
// concurrent use; a nil *console ignores every set.
type console struct {
	decisions *admin.Decisions

	mu     sync.Mutex
	next   *config.File // the running config (the learn section)
	polCfg policy.Config
	pol    *policy.Policy
	cache  *cache.Store
	up     *upstream.Client
}

// newConsole keeps the last admin.DefaultDecisionsKept decision records;
// the caller registers their metrics (Decisions.Collectors).
func newConsole(cfg *config.File) *console {
	return &console{decisions: admin.NewDecisions(admin.DecisionsOptions{}), next: cfg}
}

// tee returns log with its handler wrapped so that every decision record
// is also written, as a JSON line, into the console's ring (whatever
// log.format is).
func (c *console) tee(log *slog.Logger) *slog.Logger {
	return slog.New(newDecisionTee(log.Handler(), c.decisions))
}

func (c *console) setPolicy(cfg policy.Config, pol *policy.Policy) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.polCfg, c.pol = cfg, pol
}

func (c *console) setCache(cs *cache.Store, up *upstream.Client) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cache, c.up = cs, up
}

// policy is the running policy; when neither the gateway nor DNS runs,
// the config's policy compiled here (nil if it does not compile).
func (c *console) policy() (policy.Config, *policy.Policy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pol == nil && c.next != nil {
		if p, err := policy.Compile(c.next.Policy); err == nil {
			c.polCfg, c.pol = c.next.Policy, p
		}
	}
	return c.polCfg, c.pol
}

// wire hands the console's data sources to the admin server.
// It warns when the listener is not loopback and no admin user can sign in.
func (c *console) wire(adm *admin.Server, cfg *config.File, hits *policy.Hits, log *slog.Logger) {
	for _, w := range adminWarnings(cfg) {
		log.Warn(w, "component", "admin")
	}
	replica := ""
	if redisConfigured(cfg) {
		replica, _ = replicaName(cfg)
	}
	ac := admin.Console{
		Decisions: c.decisions,
		Version:   version,
		Replica:   replica,
		Policy:    c.policy,
		Hits:      hits,
		Learn:     c.learn,
		Upstreams: c.upstreams,
	}
	c.mu.Lock()
	if c.cache != nil {
		ac.Cache = c.cacheContent
	}
	c.mu.Unlock()
	adm.SetConsole(ac)
}

// reload applies a re-read config: admin users and open endpoints, the
// policy and the learn section.
func (c *console) reload(adm *admin.Server) func(next *nextConfig) error {
	return func(next *nextConfig) error {
		p, err := next.policy()
		if err != nil {
			return err
		}
		if err := adm.Reload(next.Admin); err != nil {
			return err
		}
		c.mu.Lock()
		c.next, c.polCfg, c.pol = next.File, next.Policy, p
		c.mu.Unlock()
		return nil
	}
}

func (c *console) cacheContent() (admin.CacheContent, error) {
	c.mu.Lock()
	cs := c.cache
	c.mu.Unlock()
	inv, err := cs.Inventory()
	if err != nil {
		return admin.CacheContent{}, err
	}
	var fills []admin.Fill
	for _, f := range cs.Fills() {
		fills = append(fills, admin.Fill(f))
	}
	return admin.CacheContent{Repositories: inv, Fills: fills}, nil
}

func (c *console) upstreams() []admin.Upstream {
	c.mu.Lock()
	up := c.up
	c.mu.Unlock()
	if up == nil {
		return nil
	}
	var out []admin.Upstream
	for _, h := range up.Health() {
		out = append(out, admin.Upstream(h))
	}
	return out
}

// decisionTee is the process log handler with a second JSON handler that
// writes the decision records into the console's ring. It keeps the
// process handler's level (Enabled is the process handler's), and
// WithAttrs/WithGroup reach both, so component and replica appear in the
// ring's lines as in the log.
type decisionTee struct {
	next slog.Handler
	ring slog.Handler
}

func newDecisionTee(next slog.Handler, d *admin.Decisions) *decisionTee {
	return &decisionTee{next: next, ring: slog.NewJSONHandler(ringWriter{d}, &slog.HandlerOptions{Level: slog.LevelDebug})}
}

func (t *decisionTee) Enabled(ctx context.Context, l slog.Level) bool { return t.next.Enabled(ctx, l) }

func (t *decisionTee) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == admin.MsgEgressDecision || r.Message == admin.MsgDNSDecision {
		_ = t.ring.Handle(ctx, r) // the ring never fails; the log's error is what counts
	}
	return t.next.Handle(ctx, r)
}

func (t *decisionTee) WithAttrs(as []slog.Attr) slog.Handler {
	return &decisionTee{next: t.next.WithAttrs(as), ring: t.ring.WithAttrs(as)}
}

func (t *decisionTee) WithGroup(name string) slog.Handler {
	return &decisionTee{next: t.next.WithGroup(name), ring: t.ring.WithGroup(name)}
}

// ringWriter takes the JSON handler's lines (one Write per record).
type ringWriter struct{ d *admin.Decisions }

func (w ringWriter) Write(p []byte) (int, error) {
	w.d.Add(p)
	return len(p), nil
}

// adminWarnings are what `airlock config check` and serve say about an
// admin section that is valid but probably not meant.
func adminWarnings(cfg *config.File) []string { return cfg.Admin.Warnings() }
