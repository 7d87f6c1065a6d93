package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Put stores value under key for ttl, shared by every replica. While
// Redis is unreachable (or with no Redis) it returns ErrUnavailable at
// once: the caller keeps its local copy.
func (c *Cluster) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("cluster: put %q: ttl must be positive, got %s", key, ttl)
	}
	if !c.isUp() {
		return ErrUnavailable
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	if err := c.rdb.Set(cctx, c.recordKey(key), value, ttl).Err(); err != nil {
		if ctx.Err() == nil {
			c.failed("put", err)
		}
		return fmt.Errorf("cluster: put %q: %w", key, err)
	}
	return nil
}

// Get returns the value another replica (or this one) put under key;
// (nil, false, nil) on a miss. An error means Redis trouble (ErrUnavailable
// at once while degraded), which the caller treats as a miss.
func (c *Cluster) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if !c.isUp() {
		return nil, false, ErrUnavailable
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	b, err := c.rdb.Get(cctx, c.recordKey(key)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		if ctx.Err() == nil {
			c.failed("get", err)
		}
		return nil, false, fmt.Errorf("cluster: get %q: %w", key, err)
	}
	return b, true, nil
}

func (c *Cluster) recordKey(key string) string { return c.prefix + "rec:" + key }
