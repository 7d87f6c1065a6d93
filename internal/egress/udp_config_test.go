package egress

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestUDPConfig(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.UDPIdleTimeout != DefaultUDPIdleTimeout || c.UDPMaxFlows != DefaultUDPMaxFlows {
		t.Errorf("SetDefaults() = udpIdleTimeout %s, udpMaxFlows %d; want %s, %d", c.UDPIdleTimeout, c.UDPMaxFlows, DefaultUDPIdleTimeout, DefaultUDPMaxFlows)
	}
	bad := Config{UDPIdleTimeout: -time.Second, UDPMaxFlows: -1}
	var got []string
	bad.Validate(func(path, msg string) { got = append(got, path+": "+msg) })
	want := []string{"udpIdleTimeout: must be positive, got -1s", "udpMaxFlows: must be positive, got -1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Validate(negative UDP keys) (-want +got):\n%s", diff)
	}
}
