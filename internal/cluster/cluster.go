// Package cluster coordinates airlock replicas through Redis: leases (at
// most one holder cluster-wide), singleton jobs, small shared records with
// a TTL, and the replicas' version records.
//
// Redis is never a reason for an outage. Every Redis call has a short
// timeout (callTimeout); the first failure marks the cluster degraded, and
// from then on calls do not reach Redis at all: leases come from a
// process-local table (at most one holder per replica), Put and Get fail at
// once with ErrUnavailable (callers treat that as a miss), singleton jobs
// run on every replica. A health loop PINGs Redis every healthInterval and
// marks the recovery; nothing needs a restart. One log line is written per
// transition.
//
// All methods are safe for concurrent use. A Cluster built without Redis
// addresses is a single replica: everything local, never degraded.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Timings; variables so tests can shorten them.
var (
	callTimeout     = 750 * time.Millisecond // each Redis call
	healthInterval  = time.Second            // PING while degraded, and while up
	pollInterval    = 500 * time.Millisecond // WaitLease's fallback poll
	versionInterval = 10 * time.Second       // version record refresh and peer scan
	versionTTL      = 30 * time.Second       // version record expiry
)

// ErrUnavailable is returned by Put and Get while Redis is configured but
// unreachable: callers treat it as a miss.
var ErrUnavailable = errors.New("cluster: redis unavailable (coordination is local)")

// Log messages of the transitions (one line each).
const (
	msgDegraded  = "redis unreachable: coordination is local (degraded) until it answers"
	msgRecovered = "redis reachable: coordination is cluster-wide"
)

// Log keys.
const (
	logReplica = "replica"
	logReason  = "reason"
	logOp      = "op"
)

// Deps are what a Cluster needs from its surroundings.
type Deps struct {
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics not registered
	Getenv     func(string) string   // nil: os.Getenv
}

// Cluster is this replica's view of the cluster.
type Cluster struct {
	name      string
	prefix    string
	advertise string // cfg.Advertise without a trailing slash
	cfg       RedisConfig
	pass      string
	log       *slog.Logger
	m         *metrics

	rdb redis.UniversalClient // nil: no Redis configured (or not started)

	mu          sync.Mutex
	up          bool
	known       bool                   // a Redis call has had an outcome (logged transitions start from it)
	reason      string                 // why degraded, while !up
	local       map[string]*Lease      // leases this process holds (through Redis or local)
	waiters     map[string][]chan bool // WaitLease waiters by key, woken by release notifications
	versions    versionRecord
	peers       []Peer
	peersAt     time.Time
	peerToken   string    // PeerToken, once read from Redis
	peerTokenAt time.Time // when it was read

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds a Cluster from cfg without any I/O. cfg should have passed
// Validate.
func New(cfg Config, deps Deps) (*Cluster, error) {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	getenv := deps.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	name := cfg.Name
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("cluster: no cluster.name and no host name to default to: %w", err)
		}
		name = h
	}
	prefix := cfg.Redis.KeyPrefix
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	c := &Cluster{
		name:      name,
		prefix:    prefix,
		advertise: strings.TrimSuffix(cfg.Advertise, "/"),
		cfg:       cfg.Redis,
		log:       log.With(logReplica, name),
		m:         newMetrics(deps.Registerer),
		local:     map[string]*Lease{},
		waiters:   map[string][]chan bool{},
		reason:    "connecting to redis",
	}
	c.cfg.Addresses = cfg.Redis.addresses()
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{log}) })
	if env := cfg.Redis.PasswordEnv; env != "" {
		c.pass = getenv(env)
		if c.pass == "" {
			return nil, fmt.Errorf("cluster: redis.passwordEnv names %s, which is empty: set it to the Redis password", env)
		}
	}
	return c, nil
}

// Name is this replica's name.
func (c *Cluster) Name() string { return c.name }

// configured reports whether Redis addresses were given.
func (c *Cluster) configured() bool { return len(c.cfg.Addresses) > 0 }

// Start builds the Redis client and starts the background loops (health,
// release notifications, version records). It never fails because Redis
// is down: until the first PING answers, the cluster is degraded. It fails
// only on a TLS CA file it cannot read.
func (c *Cluster) Start(ctx context.Context) error {
	if !c.configured() {
		return nil
	}
	opts := &redis.UniversalOptions{
		Addrs:                 c.cfg.Addresses,
		MasterName:            c.cfg.SentinelMaster,
		Username:              c.cfg.Username,
		Password:              c.pass,
		DB:                    c.cfg.DB,
		DialTimeout:           callTimeout,
		ReadTimeout:           callTimeout,
		WriteTimeout:          callTimeout,
		PoolTimeout:           callTimeout,
		MaxRetries:            -1, // a failed call fails now; the health loop retries
		ContextTimeoutEnabled: true,
		DisableIdentity:       true, // no CLIENT SETINFO: Debian's redis 7.0 lacks it
	}
	if c.cfg.TLS.Enabled {
		tc := &tls.Config{ServerName: c.cfg.TLS.ServerName, MinVersion: tls.VersionTLS12}
		if f := c.cfg.TLS.CAFile; f != "" {
			pem, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("cluster: read redis.tls.caFile: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("cluster: redis.tls.caFile %s holds no PEM certificate", f)
			}
		}
		opts.TLSConfig = tc
	}
	c.rdb = redis.NewUniversalClient(opts)
	ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.m.up.Set(0)
	// The first PING is answered (or fails) before Start returns, so that
	// replicas starting together do not all take local leases (and run
	// every singleton job) in the moment before they know Redis is up.
	// It waits at most one call timeout.
	cctx, cancel := c.call(ctx)
	if err := c.rdb.Ping(cctx).Err(); err != nil {
		c.failed("ping", err)
	} else {
		c.recovered()
	}
	cancel()
	c.wg.Add(3)
	go func() { defer c.wg.Done(); c.healthLoop(ctx) }()
	go func() { defer c.wg.Done(); c.notifyLoop(ctx) }()
	go func() { defer c.wg.Done(); c.versionLoop(ctx) }()
	return nil
}

// Shutdown stops the background loops, deletes this replica's version
// record and closes the Redis connections. Leases still held are left to
// expire (their holders release them).
func (c *Cluster) Shutdown(ctx context.Context) error {
	if c.rdb == nil {
		return nil
	}
	c.cancel()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("cluster: shutdown: %w", ctx.Err())
	}
	if c.isUp() {
		dctx, cancel := context.WithTimeout(ctx, callTimeout)
		c.rdb.Del(dctx, c.versionKey(c.name))
		cancel()
	}
	return c.rdb.Close()
}

// Failed never delivers: losing Redis degrades, it does not fail.
func (c *Cluster) Failed() <-chan error { return nil }

// Degraded is true with a reason while Redis is configured but
// unreachable (coordination is local).
func (c *Cluster) Degraded() (bool, string) {
	if !c.configured() {
		return false, ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.up {
		return false, ""
	}
	return true, "redis: " + c.reason
}

func (c *Cluster) isUp() bool {
	if c.rdb == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up
}

// failed records a failed Redis call: counted always, logged once when it
// turns the cluster degraded. A redis.Nil reply is not a failure.
func (c *Cluster) failed(op string, err error) {
	c.m.errors.WithLabelValues(op).Inc()
	c.mu.Lock()
	log := c.up || !c.known // from up, or the first outcome after Start
	c.up, c.known, c.reason = false, true, op+": "+err.Error()
	c.mu.Unlock()
	if log {
		c.m.up.Set(0)
		c.m.transitions.Inc()
		c.log.Warn(msgDegraded, logOp, op, logReason, err.Error())
	}
}

func (c *Cluster) recovered() {
	c.mu.Lock()
	was := c.up
	c.up, c.known, c.reason = true, true, ""
	c.mu.Unlock()
	if !was {
		c.m.up.Set(1)
		c.log.Info(msgRecovered)
	}
}

// call bounds one Redis call.
func (c *Cluster) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, callTimeout)
}

func (c *Cluster) healthLoop(ctx context.Context) {
	t := time.NewTicker(healthInterval)
	defer t.Stop()
	for {
		cctx, cancel := c.call(ctx)
		err := c.rdb.Ping(cctx).Err()
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.failed("ping", err)
		} else {
			c.recovered()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

var redisLogOnce sync.Once

// redisLog writes the Redis client's own lines (pool dial failures, …) as
// structured debug records of the first cluster's logger; the cluster logs
// what matters (degraded, recovered) itself, once per change.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.Debug("redis client", "msg", fmt.Sprintf(format, v...))
}
