package cluster

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// MaxSetMembers bounds one shared set: a write keeps the members with the
// latest expiries, up to this many.
const MaxSetMembers = 1024

// SetMember is one member of a shared set with its own expiry.
type SetMember struct {
	Member string
	// Expires is when the member stops counting, on the writer's clock
	// (stored as Unix milliseconds). Zero in a member read back means
	// Redis held a score that is no time (not finite, or beyond Unix
	// milliseconds); callers skip such members.
	Expires time.Time
}

// SetAdd is one member to add to the shared set Key.
type SetAdd struct {
	Key string
	SetMember
}

// AddToSets adds each member to its key's set until its Expires, shared by
// every replica. Several replicas may add members to one set at once
// without losing any (each member has its own expiry, no read-modify-write):
// a member already there keeps the later of its two expiries; members
// expired on this replica's clock are trimmed, each set keeps its
// MaxSetMembers latest members, and the key itself expires with its latest
// member. The batch goes in one pipelined round trip. While Redis is
// unreachable (or with no Redis) it returns ErrUnavailable at once.
//
// Redis 6.2 or later (ZADD GT, PEXPIREAT NX/GT: 7.0).
func (c *Cluster) AddToSets(ctx context.Context, adds []SetAdd) error {
	if len(adds) == 0 {
		return nil
	}
	if !c.isUp() {
		return ErrUnavailable
	}
	type set struct {
		members []redis.Z
		max     int64
	}
	sets := map[string]*set{}
	var order []string
	for _, a := range adds {
		ms := a.Expires.UnixMilli()
		s := sets[a.Key]
		if s == nil {
			s = &set{}
			sets[a.Key] = s
			order = append(order, a.Key)
		}
		s.members = append(s.members, redis.Z{Score: float64(ms), Member: a.Member})
		s.max = max(s.max, ms)
	}
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	cctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
		for _, key := range order {
			s, k := sets[key], c.setKey(key)
			p.ZAddGT(cctx, k, s.members...)
			p.ZRemRangeByScore(cctx, k, "-inf", now)
			p.ZRemRangeByRank(cctx, k, 0, -MaxSetMembers-1)
			// A new key has no expiry (NX sets it); GT only moves a later
			// one forward. GT alone would not set it: Redis treats "no
			// expiry" as infinite.
			p.Do(cctx, "PEXPIREAT", k, s.max, "NX")
			p.Do(cctx, "PEXPIREAT", k, s.max, "GT")
		}
		return nil
	})
	if err != nil {
		c.setFailed(ctx, "set_add", err)
		return fmt.Errorf("cluster: add to %d sets: %w", len(order), err)
	}
	return nil
}

// SetMembers returns the members of the shared set key that have not
// expired on this replica's clock, latest expiry first, at most limit
// (≤ 0 or above MaxSetMembers: MaxSetMembers). A missing set is no members
// and no error. An error means Redis trouble (ErrUnavailable at once while
// degraded), which the caller treats as a miss.
func (c *Cluster) SetMembers(ctx context.Context, key string, limit int) ([]SetMember, error) {
	if limit <= 0 || limit > MaxSetMembers {
		limit = MaxSetMembers
	}
	if !c.isUp() {
		return nil, ErrUnavailable
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	zs, err := c.rdb.ZRevRangeByScoreWithScores(cctx, c.setKey(key), &redis.ZRangeBy{
		Max: "+inf", Min: "(" + strconv.FormatInt(time.Now().UnixMilli(), 10), Count: int64(limit),
	}).Result()
	if err != nil {
		c.setFailed(ctx, "set_members", err)
		return nil, fmt.Errorf("cluster: members of set %q: %w", key, err)
	}
	out := make([]SetMember, 0, len(zs))
	for _, z := range zs {
		m, _ := z.Member.(string)
		out = append(out, SetMember{Member: m, Expires: scoreTime(z.Score)})
	}
	return out, nil
}

// setFailed marks the cluster degraded for a failed call, except when
// the caller gave up or Redis answered with an error about the key itself
// (WRONGTYPE: something else wrote it), which says Redis is up.
func (c *Cluster) setFailed(ctx context.Context, op string, err error) {
	if ctx.Err() != nil {
		return
	}
	if redis.HasErrorPrefix(err, "WRONGTYPE") {
		c.m.errors.WithLabelValues(op).Inc()
		return
	}
	c.failed(op, err)
}

// scoreTime is the time of a score in Unix milliseconds; zero when it is
// no such time.
func scoreTime(s float64) time.Time {
	const maxMs = 1 << 53 // exact in a float64, and far beyond any expiry
	if math.IsNaN(s) || s < 0 || s > maxMs {
		return time.Time{}
	}
	return time.UnixMilli(int64(s))
}

func (c *Cluster) setKey(key string) string { return c.prefix + "set:" + key }
