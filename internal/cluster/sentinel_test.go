package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/redistest"
)

// Through a real Redis Sentinel: the cluster finds the master by name and
// leases and records go through it.
func TestSentinel(t *testing.T) {
	r := redistest.Start(t)
	s := redistest.StartSentinel(t, r, "airlock-test")
	c, err := New(Config{Name: "s1", Redis: RedisConfig{Addresses: []string{s}, SentinelMaster: "airlock-test", KeyPrefix: "test:"}}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown(ctx)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if down, _ := c.Degraded(); !down {
			break
		}
		if time.Now().After(deadline) {
			_, why := c.Degraded()
			t.Fatalf("not coordinating through the sentinel's master: %s", why)
		}
	}
	l, ok, err := c.TryLease(ctx, "k", 5*time.Second)
	if err != nil || !ok || l.Local() {
		t.Fatalf("TryLease through sentinel: ok=%v err=%v local=%v, want a Redis lease", ok, err, l != nil && l.Local())
	}
	defer l.Release()
	if err := c.Put(ctx, "rec", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, found, err := c.Get(ctx, "rec"); err != nil || !found || string(v) != "v" {
		t.Fatalf("Get = %q %v %v", v, found, err)
	}
}
