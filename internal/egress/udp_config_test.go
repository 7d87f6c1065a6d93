package egress

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestUDPConfig(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.UDPIdleTimeout != DefaultUDPIdleTimeout || c.UDPMaxFlows != DefaultUDPMaxFlows || c.UDPDenyTimeout != DefaultUDPDenyTimeout || c.UDPMaxFlowsPerSource != 0 {
		t.Errorf("SetDefaults() = udpIdleTimeout %s, udpMaxFlows %d, udpDenyTimeout %s, udpMaxFlowsPerSource %d; want %s, %d, %s, 0",
			c.UDPIdleTimeout, c.UDPMaxFlows, c.UDPDenyTimeout, c.UDPMaxFlowsPerSource, DefaultUDPIdleTimeout, DefaultUDPMaxFlows, DefaultUDPDenyTimeout)
	}
	bad := Config{UDPIdleTimeout: -time.Second, UDPMaxFlows: -1, UDPMaxFlowsPerSource: -1, UDPDenyTimeout: -time.Second}
	var got []string
	bad.Validate(func(path, msg string) { got = append(got, path+": "+msg) })
	want := []string{
		"udpIdleTimeout: must be positive, got -1s",
		"udpMaxFlows: must be positive, got -1",
		"udpMaxFlowsPerSource: must be positive, got -1",
		"udpDenyTimeout: must be positive, got -1s",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Validate(negative UDP keys) (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		name string
		c    Config
		want []string
	}{
		{"per source above the table", Config{UDPMaxFlows: 64, UDPMaxFlowsPerSource: 65}, []string{"udpMaxFlowsPerSource: 65 exceeds udpMaxFlows (64)"}},
		{"per source above the default table", Config{UDPMaxFlowsPerSource: 5000}, []string{"udpMaxFlowsPerSource: 5000 exceeds udpMaxFlows (4096)"}},
		{"per source equal to the table", Config{UDPMaxFlows: 64, UDPMaxFlowsPerSource: 64}, nil},
	} {
		var got []string
		tt.c.Validate(func(path, msg string) { got = append(got, path+": "+msg) })
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: Validate (-want +got):\n%s", tt.name, diff)
		}
	}
}

// The per-source share: given, or a sixteenth of the table, at least 16,
// never more than the table.
func TestUDPConfigPerSource(t *testing.T) {
	for _, tt := range []struct {
		maxFlows, perSource int
		want                int
	}{
		{maxFlows: 0, want: 256}, // the default table of 4096
		{maxFlows: 4096, want: 256},
		{maxFlows: 64, want: 16},
		{maxFlows: 8, want: 8},
		{maxFlows: 100000, want: 6250},
		{maxFlows: 64, perSource: 4, want: 4},
	} {
		c := Config{UDPMaxFlows: tt.maxFlows, UDPMaxFlowsPerSource: tt.perSource}
		if got := newUDPConfig(&c).perSource; got != tt.want {
			t.Errorf("newUDPConfig(udpMaxFlows %d, udpMaxFlowsPerSource %d).perSource = %d, want %d", tt.maxFlows, tt.perSource, got, tt.want)
		}
	}
}
