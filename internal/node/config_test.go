package node

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mut  func(*Config)
		want string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"block", func(c *Config) { c.OutboundType = OutboundBlock; c.Registry = "10.42.2.4:5000" }, ""},
		{"bad resolver", func(c *Config) { c.Resolver = "dnsmasq" }, "resolver: must be auto, resolvconf, resolved or none"},
		{"resolvconf needs port 53", func(c *Config) { c.Resolver = ResolverResolvConf; c.DNS = "10.42.2.4:5353" }, "dns: resolv.conf cannot carry a port"},
		{"resolved takes a port", func(c *Config) { c.Resolver = ResolverResolved; c.DNS = "10.42.2.4:5353" }, ""},
		{"relative containerd config", func(c *Config) { c.ContainerdConfig = "etc/containerd/config.toml" }, "containerdConfig: must be an absolute path"},
		{"udr without gateway", func(c *Config) { c.OutboundType = OutboundUserDefinedRouting }, "gateway: required"},
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
