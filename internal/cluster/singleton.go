package cluster

import (
	"context"
	"math/rand/v2"
	"time"
)

// holdScript keeps KEYS[1] for ARGV[2] more ms (or deletes it when 0)
// only while it holds our token ARGV[1].
const holdScriptSrc = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
	if tonumber(ARGV[2]) > 0 then
		return redis.call("PEXPIRE", KEYS[1], ARGV[2])
	end
	return redis.call("DEL", KEYS[1])
end
return 0`

// RunSingleton runs fn about every interval on one replica at a time,
// cluster-wide, until ctx ends (it blocks). Every replica tries the job's
// lease ("job:NAME", held for interval from the start of a run, renewed
// while fn runs longer) every interval/4 with jitter; the one that gets it
// runs fn and keeps the lease until interval after the start, so the job
// runs once per interval whichever replica runs it. fn's context ends when
// the lease is lost. While Redis is unreachable every replica runs the job
// on its own every interval (jobs are idempotent). fn's error is logged.
func (c *Cluster) RunSingleton(ctx context.Context, name string, interval time.Duration, fn func(ctx context.Context) error) {
	if interval <= 0 {
		c.log.Error("singleton job not run: interval must be positive", "job", name, "interval", interval)
		return
	}
	var lastLocal time.Time
	for {
		if ctx.Err() != nil {
			return
		}
		if l, ok, _ := c.TryLease(ctx, "job:"+name, interval); ok {
			if l.Local() && time.Since(lastLocal) < interval {
				l.Release() // run locally at most once per interval
			} else {
				if l.Local() {
					lastLocal = time.Now()
				}
				c.runHeld(ctx, name, interval, l, fn)
			}
		}
		wait := interval/4 + rand.N(interval/8+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// runHeld runs fn under l and then keeps l until interval after the start.
func (c *Cluster) runHeld(ctx context.Context, name string, interval time.Duration, l *Lease, fn func(ctx context.Context) error) {
	start := time.Now()
	fctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-l.Lost():
			cancel()
		case <-fctx.Done():
		}
	}()
	if err := fn(fctx); err != nil {
		c.log.Warn("singleton job failed", "job", name, "err", err.Error())
	}
	cancel()
	if l.Local() {
		l.Release()
		return
	}
	l.stopRenewal()
	rest := interval - time.Since(start)
	if rest > 0 && c.isUp() {
		cctx, cancelCall := c.call(context.Background())
		err := c.rdb.Eval(cctx, holdScriptSrc, []string{c.leaseKey(l.key)}, l.token, rest.Milliseconds()).Err()
		cancelCall()
		if err != nil {
			c.failed("singleton", err)
		}
		l.end() // the key expires by itself after rest; the local slot is free
		return
	}
	l.Release()
}
