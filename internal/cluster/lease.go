package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// renewScript extends KEYS[1] to ARGV[2] ms only while it holds our token
// ARGV[1]: a holder whose lease expired never extends another's.
var renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)

// releaseScript deletes KEYS[1] only while it holds our token ARGV[1], and
// then tells the waiters on channel KEYS[2].
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	redis.call("DEL", KEYS[1])
	redis.call("PUBLISH", KEYS[2], "released")
	return 1
end
return 0`)

// Lease is one held lease. Its holder acts while it holds it, stops when
// Lost is closed, and calls Release when done.
type Lease struct {
	c     *Cluster
	key   string
	token string // "" for a local lease
	ttl   time.Duration

	lost     chan struct{}
	done     chan struct{} // closed when the lease ends (released or lost): frees the local slot
	stop     chan struct{} // closed to stop the renewal loop
	lostOnce sync.Once
	endOnce  sync.Once
	stopOnce sync.Once
}

// Local reports whether the lease is process-local (taken while Redis was
// unreachable): other replicas may hold the same key.
func (l *Lease) Local() bool { return l.token == "" }

// Lost is closed when the lease expired without renewal (Redis unreachable
// past the TTL, or the key taken by another holder): the holder must stop
// acting on it.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Release gives the lease up: the key is deleted only if it still holds
// this lease's token, and waiters are told. Safe to call more than once
// and after Lost.
func (l *Lease) Release() {
	l.stopRenewal()
	if l.token != "" && l.c.isUp() {
		ctx, cancel := l.c.call(context.Background())
		err := releaseScript.Run(ctx, l.c.rdb, []string{l.c.leaseKey(l.key), l.c.releasedChannel(l.key)}, l.token).Err()
		cancel()
		if err != nil {
			l.c.failed("release", err)
		}
	}
	l.end()
}

func (l *Lease) stopRenewal() { l.stopOnce.Do(func() { close(l.stop) }) }

// end frees the local slot and wakes local waiters.
func (l *Lease) end() {
	l.endOnce.Do(func() {
		l.c.mu.Lock()
		if l.c.local[l.key] == l {
			delete(l.c.local, l.key)
		}
		l.c.mu.Unlock()
		close(l.done)
	})
}

func (l *Lease) markLost() {
	l.lostOnce.Do(func() {
		l.c.m.leases.WithLabelValues("lost").Inc()
		close(l.lost)
	})
	l.stopRenewal()
	l.end()
}

// TryLease takes the lease on key for ttl if nobody holds it, and renews
// it every ttl/3 until Release. ok is false when another holder has it.
// While Redis is unreachable the lease is process-local (Lease.Local).
// The error is only for a bad argument: Redis trouble falls back to local.
func (c *Cluster) TryLease(ctx context.Context, key string, ttl time.Duration) (*Lease, bool, error) {
	if ttl <= 0 {
		return nil, false, fmt.Errorf("cluster: lease %q: ttl must be positive, got %s", key, ttl)
	}
	l := &Lease{c: c, key: key, ttl: ttl, lost: make(chan struct{}), done: make(chan struct{}), stop: make(chan struct{})}
	c.mu.Lock()
	if _, held := c.local[key]; held {
		c.mu.Unlock()
		c.m.leases.WithLabelValues("busy").Inc()
		return nil, false, nil
	}
	c.local[key] = l // reserve the slot while asking Redis
	c.mu.Unlock()

	if c.isUp() {
		l.token = newToken()
		cctx, cancel := c.call(ctx)
		ok, err := c.rdb.SetNX(cctx, c.leaseKey(key), l.token, ttl).Result()
		cancel()
		switch {
		case err == nil && ok:
			c.m.leases.WithLabelValues("acquired").Inc()
			go l.renew()
			return l, true, nil
		case err == nil:
			l.end()
			c.m.leases.WithLabelValues("busy").Inc()
			return nil, false, nil
		case ctx.Err() != nil:
			l.end()
			return nil, false, ctx.Err()
		default:
			// Redis failed: it may or may not have stored the key; it
			// expires after ttl either way. Fall back to local.
			c.failed("lease", err)
			l.token = ""
		}
	}
	c.m.leases.WithLabelValues("local").Inc()
	return l, true, nil
}

// renew extends a Redis lease every ttl/3; past ttl without a successful
// renewal, or when the key no longer holds the token, the lease is lost.
func (l *Lease) renew() {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if !l.c.isUp() {
			if time.Since(last) >= l.ttl {
				l.markLost()
				return
			}
			continue
		}
		ctx, cancel := l.c.call(context.Background())
		n, err := renewScript.Run(ctx, l.c.rdb, []string{l.c.leaseKey(l.key)}, l.token, l.ttl.Milliseconds()).Int()
		cancel()
		switch {
		case err == nil && n == 1:
			last = time.Now()
		case err == nil:
			l.markLost() // expired and maybe taken by another
			return
		default:
			l.c.failed("renew", err)
			if time.Since(last) >= l.ttl {
				l.markLost()
				return
			}
		}
	}
}

// WaitLease returns when the lease on key is not held: released (told by
// pub/sub) or expired (found by polling). It returns at once when nobody
// holds it, and when Redis becomes unreachable (the caller's TryLease then
// falls back to local). The caller re-checks its condition and may
// TryLease itself. The error is ctx's.
func (c *Cluster) WaitLease(ctx context.Context, key string) error {
	c.mu.Lock()
	l := c.local[key]
	c.mu.Unlock()
	if l != nil { // held in this process: its end is known here
		select {
		case <-l.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if !c.isUp() {
		return nil
	}
	wake := c.addWaiter(key)
	defer c.removeWaiter(key, wake)
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		cctx, cancel := c.call(ctx)
		n, err := c.rdb.Exists(cctx, c.leaseKey(key)).Result()
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			c.failed("wait", err)
			return nil
		case n == 0:
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
			return nil
		case <-t.C:
		}
	}
}

func (c *Cluster) addWaiter(key string) chan bool {
	ch := make(chan bool, 1)
	c.mu.Lock()
	c.waiters[key] = append(c.waiters[key], ch)
	c.mu.Unlock()
	return ch
}

func (c *Cluster) removeWaiter(key string, ch chan bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := c.waiters[key]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(c.waiters, key)
	} else {
		c.waiters[key] = ws
	}
}

// notifyLoop receives every release notification of the prefix (one
// pattern subscription per replica; go-redis reconnects it) and wakes the
// waiters on that key.
func (c *Cluster) notifyLoop(ctx context.Context) {
	pattern := c.prefix + "released:*"
	ps := c.rdb.PSubscribe(ctx, pattern)
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			key := msg.Channel[len(c.prefix+"released:"):]
			c.mu.Lock()
			for _, w := range c.waiters[key] {
				select {
				case w <- true:
				default:
				}
			}
			c.mu.Unlock()
		}
	}
}

func (c *Cluster) leaseKey(key string) string        { return c.prefix + "lease:" + key }
func (c *Cluster) releasedChannel(key string) string { return c.prefix + "released:" + key }

func newToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
