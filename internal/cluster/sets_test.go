package cluster

import (
	"context"
	"errors"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/redistest"
	"github.com/redis/go-redis/v9"
)

func membersOf(t *testing.T, c *Cluster, key string) map[string]time.Time {
	t.Helper()
	ms, err := c.SetMembers(context.Background(), key, 0)
	if err != nil {
		t.Fatalf("SetMembers(%q): %v", key, err)
	}
	out := map[string]time.Time{}
	for _, m := range ms {
		out[m.Member] = m.Expires
	}
	return out
}

// Two replicas add members to one set: both are there, each with its own
// expiry; an expiry only moves forward; expired members are not read.
func TestSetsMergeAcrossReplicas(t *testing.T) {
	r := redistest.Start(t)
	a, b := replica(t, r, "a"), replica(t, r, "b")
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	long, short := now.Add(time.Hour), now.Add(time.Minute)

	if err := a.AddToSets(ctx, []SetAdd{{Key: "obs:1", SetMember: SetMember{"x.example", long}}}); err != nil {
		t.Fatalf("AddToSets on a: %v", err)
	}
	if err := b.AddToSets(ctx, []SetAdd{
		{Key: "obs:1", SetMember: SetMember{"y.example", short}},
		{Key: "obs:1", SetMember: SetMember{"x.example", short}}, // earlier: keeps long
		{Key: "obs:2", SetMember: SetMember{"gone.example", now.Add(-time.Second)}},
	}); err != nil {
		t.Fatalf("AddToSets on b: %v", err)
	}
	got := membersOf(t, a, "obs:1")
	if len(got) != 2 || !got["x.example"].Equal(long) || !got["y.example"].Equal(short) {
		t.Errorf("members of obs:1 = %v, want x.example until %v and y.example until %v", got, long, short)
	}
	if got := membersOf(t, b, "obs:2"); len(got) != 0 {
		t.Errorf("members of obs:2 (expired) = %v, want none", got)
	}
	if got := membersOf(t, b, "nothing"); len(got) != 0 {
		t.Errorf("members of a missing set = %v, want none", got)
	}
	// The key expires with its latest member (Redis's clock: allow slack).
	ttl, err := a.rdb.PTTL(ctx, a.setKey("obs:1")).Result()
	if err != nil || ttl < 59*time.Minute || ttl > time.Hour+time.Second {
		t.Errorf("PTTL of obs:1 = %v, %v; want about 1h (its latest member)", ttl, err)
	}
	// A later expiry from another replica moves the key's expiry forward.
	if err := b.AddToSets(ctx, []SetAdd{{Key: "obs:1", SetMember: SetMember{"y.example", now.Add(2 * time.Hour)}}}); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := a.rdb.PTTL(ctx, a.setKey("obs:1")).Result(); ttl < time.Hour+59*time.Minute {
		t.Errorf("PTTL of obs:1 after a later member = %v, want about 2h", ttl)
	}
	if err := a.AddToSets(ctx, nil); err != nil {
		t.Errorf("AddToSets(nil) = %v, want nil", err)
	}
}

// A set keeps its MaxSetMembers latest members; a read returns at most
// limit, latest first.
func TestSetsBounded(t *testing.T) {
	r := redistest.Start(t)
	a := replica(t, r, "a")
	ctx := context.Background()
	now := time.Now()
	var adds []SetAdd
	for i := range MaxSetMembers + 10 {
		adds = append(adds, SetAdd{Key: "k", SetMember: SetMember{"m" + strconv.Itoa(i), now.Add(time.Hour + time.Duration(i)*time.Second)}})
	}
	if err := a.AddToSets(ctx, adds); err != nil {
		t.Fatal(err)
	}
	if n, _ := a.rdb.ZCard(ctx, a.setKey("k")).Result(); n != MaxSetMembers {
		t.Errorf("ZCARD = %d, want %d", n, MaxSetMembers)
	}
	ms, err := a.SetMembers(ctx, "k", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[0].Member != "m"+strconv.Itoa(MaxSetMembers+9) {
		t.Errorf("SetMembers(limit 3) = %v, want the 3 latest, m%d first", ms, MaxSetMembers+9)
	}
}

// Redis down: calls fail at once with ErrUnavailable; back: they work.
// A key of another type is an error that does not mark the cluster
// degraded.
func TestSetsRedisDownAndWrongType(t *testing.T) {
	r := redistest.Start(t)
	a := replica(t, r, "a")
	ctx := context.Background()
	add := []SetAdd{{Key: "k", SetMember: SetMember{"m", time.Now().Add(time.Minute)}}}

	if err := a.rdb.Set(ctx, a.setKey("str"), "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetMembers(ctx, "str", 0); err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("SetMembers of a string key = %v, want a WRONGTYPE error", err)
	}
	if d, _ := a.Degraded(); d {
		t.Error("a WRONGTYPE reply marked the cluster degraded")
	}

	r.Stop()
	a.AddToSets(ctx, add) // the first failure marks degraded (or the health loop)
	waitFor(t, "degraded", func() bool { d, _ := a.Degraded(); return d })
	if err := a.AddToSets(ctx, add); !errors.Is(err, ErrUnavailable) {
		t.Errorf("AddToSets while down = %v, want ErrUnavailable", err)
	}
	if _, err := a.SetMembers(ctx, "k", 0); !errors.Is(err, ErrUnavailable) {
		t.Errorf("SetMembers while down = %v, want ErrUnavailable", err)
	}
	r.Restart()
	waitFor(t, "recovery", func() bool { d, _ := a.Degraded(); return !d })
	if err := a.AddToSets(ctx, add); err != nil {
		t.Fatalf("AddToSets after recovery: %v", err)
	}
	if got := membersOf(t, a, "k"); len(got) != 1 {
		t.Errorf("members after recovery = %v, want m", got)
	}
}

// Scores that are no time read back as a zero Expires.
func TestSetsOddScores(t *testing.T) {
	r := redistest.Start(t)
	a := replica(t, r, "a")
	ctx := context.Background()
	if err := a.rdb.ZAdd(ctx, a.setKey("k"), redisZ(math.Inf(1), "inf"), redisZ(1e300, "huge")).Err(); err != nil {
		t.Fatal(err)
	}
	got := membersOf(t, a, "k")
	if len(got) != 2 || !got["inf"].IsZero() || !got["huge"].IsZero() {
		t.Errorf("members = %v, want inf and huge with zero Expires", got)
	}
	for _, s := range []float64{math.NaN(), -1, math.Inf(-1)} {
		if !scoreTime(s).IsZero() {
			t.Errorf("scoreTime(%v) = %v, want zero", s, scoreTime(s))
		}
	}
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }
