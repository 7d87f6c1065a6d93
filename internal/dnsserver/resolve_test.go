package dnsserver

import (
	"context"
	"testing"

	"github.com/airlockdev/airlock/internal/testkit/dnstest"
)

// The gateway's lookups go through private zones and the same cache and
// forwarders as nodes' queries.
func TestLookupNetIP(t *testing.T) {
	up := dnstest.NewZone(t, map[string][]string{
		"www.allowed.test./A":    {"www.allowed.test. 300 IN CNAME edge.cdn.test.", "edge.cdn.test. 60 IN A 1.2.3.4"},
		"www.allowed.test./AAAA": {"www.allowed.test. 300 IN AAAA 2001:db8::4"},
	})
	cfg := defaults(up.Addr)
	cfg.PrivateZones = privateZones()
	e := start(t, cfg, Deps{})
	ctx := context.Background()

	tests := []struct {
		host string
		want []string
	}{
		{"acr.privatelink.test", []string{"10.1.2.3"}},
		{"alias.privatelink.test", []string{"10.1.2.3"}},
		{"www.allowed.test", []string{"1.2.3.4"}}, // CNAME followed; no AAAA without allowIPv6
	}
	for _, tt := range tests {
		got, err := e.srv.LookupNetIP(ctx, "ip", tt.host)
		if err != nil || len(got) != len(tt.want) || got[0].String() != tt.want[0] {
			t.Errorf("LookupNetIP(%q) = %v, %v; want %v", tt.host, got, err, tt.want)
		}
	}
	before := up.Queries.Load()
	// What is held answers without waiting: zones, and the cache after the
	// lookups above; a name never asked does not.
	for _, tt := range tests {
		got, ok := e.srv.CachedNetIP("ip", tt.host)
		if !ok || len(got) != len(tt.want) || got[0].String() != tt.want[0] {
			t.Errorf("CachedNetIP(%q) = %v, %v; want %v", tt.host, got, ok, tt.want)
		}
	}
	if got, ok := e.srv.CachedNetIP("ip", "other.allowed.test"); ok {
		t.Errorf("CachedNetIP of a name never looked up = %v, want not held", got)
	}
	if up.Queries.Load() != before {
		t.Errorf("CachedNetIP asked the forwarder (%d → %d queries)", before, up.Queries.Load())
	}
	if _, err := e.srv.LookupNetIP(ctx, "ip", "www.allowed.test"); err != nil || up.Queries.Load() != before {
		t.Errorf("second lookup asked the forwarder again (%d → %d queries), err %v; want a cache hit", before, up.Queries.Load(), err)
	}
	if _, err := e.srv.LookupNetIP(ctx, "ip", "nothing.test"); err == nil {
		t.Error("LookupNetIP of a name the forwarder does not know succeeded")
	}
	if _, err := e.srv.LookupNetIP(ctx, "ip", "bad name"); err == nil {
		t.Error("LookupNetIP of an invalid name succeeded")
	}
}
