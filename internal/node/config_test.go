package node

import (
	"net/netip"
	"strings"
	"testing"
)

func TestConfigDefaultPodLinkLocalNone(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.PodLinkLocalAccess != LinkLocalNone {
		t.Errorf("default podLinkLocalAccess = %q, want %q", c.PodLinkLocalAccess, LinkLocalNone)
	}
}

// TestPlanLinkLocalNote: a link-local entry of allowedAddresses is for the
// node only unless podLinkLocalAccess is Allowed, and apply says so.
func TestPlanLinkLocalNote(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		access  LinkLocalAccess
		want    int // notes about link-local
	}{
		{"metadata", []string{"10.42.0.0/16", "169.254.169.254"}, LinkLocalNone, 1},
		{"v6 link-local and a range holding metadata", []string{"fe80::/64", "128.0.0.0/1"}, LinkLocalNone, 2},
		{"no link-local", []string{"10.42.0.0/16", "fdaa::/16"}, LinkLocalNone, 0},
		{"allowed for pods", []string{"169.254.169.254"}, LinkLocalAllowed, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{OutboundType: OutboundBlock, Registry: Addresses{"10.42.2.4:5000"}, AllowedAddresses: tt.allowed, PodLinkLocalAccess: tt.access}
			c.SetDefaults()
			p, err := New(t.TempDir(), newFakeNet(), nil).Plan(Input{Config: c})
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			for _, n := range p.Notes {
				if strings.Contains(n, "pods do not") {
					got++
				}
			}
			if got != tt.want {
				t.Errorf("Plan(%v, %s) notes = %q, want %d link-local notes", tt.allowed, tt.access, p.Notes, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mut  func(*Config)
		want string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"block", func(c *Config) { c.OutboundType = OutboundBlock; c.Registry = Addresses{"10.42.2.4:5000"} }, ""},
		{"bad resolver", func(c *Config) { c.Resolver = "dnsmasq" }, "resolver: must be auto, resolvconf, resolved or none"},
		{"resolvconf needs port 53", func(c *Config) { c.Resolver = ResolverResolvConf; c.DNS = Addresses{"10.42.2.4:5353"} }, "dns: resolv.conf cannot carry a port"},
		{"resolved takes a port", func(c *Config) { c.Resolver = ResolverResolved; c.DNS = Addresses{"10.42.2.4:5353"} }, ""},
		{"relative containerd config", func(c *Config) { c.ContainerdConfig = "etc/containerd/config.toml" }, "containerdConfig: must be an absolute path"},
		{"udr without gateway", func(c *Config) { c.OutboundType = OutboundUserDefinedRouting }, "gateway: required"},
		{"host-only addresses", func(c *Config) {
			c.HostAllowedAddresses = []string{"169.254.169.254", "168.63.129.16/32", "fd00:ec2::254"}
		}, ""},
		{"bad host-only address", func(c *Config) { c.HostAllowedAddresses = []string{"10.0.0.0/8", "metadata"} }, "hostAllowedAddresses[1]: must be a CIDR"},
		{"bad allowed address", func(c *Config) { c.AllowedAddresses = []string{"10.0.0.0/33"} }, "allowedAddresses[0]: must be a CIDR"},
		{"pod link-local allowed", func(c *Config) { c.PodLinkLocalAccess = LinkLocalAllowed }, ""},
		{"pod link-local IMDS", func(c *Config) { c.PodLinkLocalAccess = "IMDS" }, "podLinkLocalAccess: must be None or Allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			c.SetDefaults()
			tt.mut(&c)
			var got []string
			c.Validate(func(path, msg string) { got = append(got, path+": "+msg) })
			all := strings.Join(got, "\n")
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("Validate(%s) = %q, want no error", tt.name, all)
			case tt.want != "" && !strings.Contains(all, tt.want):
				t.Errorf("Validate(%s) = %q, want %q", tt.name, all, tt.want)
			}
		})
	}
}

func TestConfigReaches(t *testing.T) {
	c := Config{
		AllowedAddresses:     []string{"10.42.0.0/16", "169.254.169.254", "fdaa:42::/48"},
		HostAllowedAddresses: []string{"168.63.129.16", "10.42.9.9"},
	}
	c.SetDefaults()
	tests := []struct {
		addr      string
		node, pod bool
	}{
		{"10.42.1.1", true, true},
		{"10.42.9.9", true, false},     // host-only inside an allowed range
		{"168.63.129.16", true, false}, // host-only
		{"169.254.169.254", true, false},
		{"fdaa:42::1", true, true},
		{"198.19.0.10", false, false},
	}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		if got := c.Reaches(a, false); got != tt.node {
			t.Errorf("Reaches(%s, node) = %v, want %v", a, got, tt.node)
		}
		if got := c.Reaches(a, true); got != tt.pod {
			t.Errorf("Reaches(%s, pod) = %v, want %v", a, got, tt.pod)
		}
	}
	c.PodLinkLocalAccess = LinkLocalAllowed
	if !c.Reaches(netip.MustParseAddr("169.254.169.254"), true) {
		t.Errorf("Reaches(169.254.169.254, pod) with podLinkLocalAccess Allowed = false, want true")
	}
}
