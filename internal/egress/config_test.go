package egress

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/airlockdev/airlock/internal/netclass"
	"github.com/airlockdev/airlock/internal/policy"
)

func TestDialerCheck(t *testing.T) {
	d, err := NewDialer(&Config{AllowedInternalRanges: netclass.MustParseRanges("10.1.0.0/16")}, fakeResolver{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr     string
		internal bool
		want     policy.Reason
	}{
		{"8.8.8.8", true, ""},
		{"10.1.2.3", true, ""},
		{"10.2.0.1", true, policy.ReasonInternalAddress},
		{"10.2.0.1", false, ""}, // a network rule matched the address
		{"169.254.169.254", true, policy.ReasonInternalAddress},
		{"2606:4700::1111", true, policy.ReasonIPv6Disabled},
		{"::1", false, policy.ReasonIPv6Disabled},
	}
	for _, tc := range tests {
		if got, _ := d.Check(netip.MustParseAddr(tc.addr), tc.internal); got != tc.want {
			t.Errorf("Check(%s, %v) = %q, want %q", tc.addr, tc.internal, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"defaults", Config{}, nil},
		{"bad mode", Config{Mode: "block"}, []string{"mode"}},
		{"same listen", Config{ProxyListen: "127.0.0.1:1", TransparentListen: "127.0.0.1:1"}, []string{"transparentListen"}},
		{"bad sources", Config{SourceAddresses: []string{"0.0.0.0", "192.0.2.1", "nope"}}, []string{"sourceAddresses[0]", "sourceAddresses[2]"}},
		{"negative timeouts", Config{DialTimeout: -1, HeadTimeout: -1}, []string{"dialTimeout", "headTimeout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg
			c.SetDefaults()
			var got []string
			c.Validate(func(path, msg string) { got = append(got, path) })
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Validate(%+v) paths (-want +got):\n%s", tc.cfg, diff)
			}
		})
	}
	var c Config
	c.SetDefaults()
	if c.Mode != ModeEnforce || c.DialTimeout != DefaultDialTimeout || c.HeadTimeout != DefaultHeadTimeout {
		t.Errorf("SetDefaults() = %+v, want enforce, 10s, 5s", c)
	}
}
