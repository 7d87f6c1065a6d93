package dnsserver

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSetDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	want := Config{
		ForwarderTimeout:   2 * time.Second,
		StaleFor:           time.Hour,
		AllowQueryTypes:    []string{"A", "AAAA", "CNAME", "SRV", "PTR", "SOA", "NS"},
		LogAllowed:         "sampled",
		Mode:               "enforce",
		BlockedRcode:       "NXDOMAIN",
		ObservationGrace:   15 * time.Minute,
		ObservationEntries: 100000,
		CacheEntries:       100000,
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("SetDefaults (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // "path: substring"
	}{
		{"defaults with a forwarder", func(c *Config) {}, nil},
		{"no forwarders", func(c *Config) { c.Forwarders = nil }, []string{"forwarders: must list"}},
		{"no forwarders but a zone", func(c *Config) { c.Forwarders = nil; c.PrivateZones = privateZones() }, nil},
		{"forwarder name", func(c *Config) { c.Forwarders = []string{"dns.google:53"} }, []string{"forwarders[0]: \"dns.google:53\""}},
		{"forwarder without port", func(c *Config) { c.Forwarders = []string{"10.0.0.53"} }, []string{"forwarders[0]:"}},
		{"timeout", func(c *Config) { c.ForwarderTimeout = 0 }, []string{"forwarderTimeout: must be positive"}},
		{"staleFor", func(c *Config) { c.StaleFor = -time.Second }, []string{"staleFor: must not be negative"}},
		{"qtype", func(c *Config) { c.AllowQueryTypes = []string{"a", "BOGUS"} }, []string{"allowQueryTypes[1]: \"BOGUS\""}},
		{"logAllowed", func(c *Config) { c.LogAllowed = "some" }, []string{"logAllowed: \"some\""}},
		{"mode", func(c *Config) { c.Mode = "audit" }, []string{"mode: \"audit\": want enforce or report"}},
		{"mode report", func(c *Config) { c.Mode = ModeReport }, nil},
		{"blockedRcode", func(c *Config) { c.BlockedRcode = "SERVFAIL" }, []string{"blockedRcode: \"SERVFAIL\""}},
		{"allowNames", func(c *Config) { c.AllowNames = []string{"*.ok.test", "a.*.test"} }, []string{"allowNames[1]:"}},
		{"zone name", func(c *Config) { c.PrivateZones = []ZoneConfig{{Zone: "bad zone"}} }, []string{"privateZones[0].zone:"}},
		{"duplicate zone", func(c *Config) {
			c.PrivateZones = []ZoneConfig{{Zone: "z.test"}, {Zone: "Z.test."}}
		}, []string{"privateZones[1].zone: duplicate zone z.test"}},
		{"records", func(c *Config) {
			c.PrivateZones = []ZoneConfig{{Zone: "z.test", Records: []RecordConfig{
				{Name: "a", Type: "A", Value: "::1"},
				{Name: "b", Type: "AAAA", Value: "10.0.0.1"},
				{Name: "c", Type: "MX", Value: "10 m.z.test"},
				{Name: "d", Type: "SRV", Value: "10 5 99999 t.z.test"},
				{Name: "e.", Type: "A", Value: "10.0.0.1"},
				{Name: "f", Type: "CNAME", Value: "not a name"},
				{Name: "@", Type: "TXT", Value: strings.Repeat("x", 600)},
			}}}
		}, []string{
			"privateZones[0].records[0]: value \"::1\"",
			"privateZones[0].records[1]: value \"10.0.0.1\"",
			"privateZones[0].records[2]: type \"MX\"",
			"privateZones[0].records[3]: value",
			"privateZones[0].records[4]: name \"e.\"",
			"privateZones[0].records[5]: value:",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaults("10.0.0.53:53")
			c.Listen = "127.0.0.1:5353"
			tt.modify(&c)
			var got []string
			c.Validate(func(path, msg string) { got = append(got, path+": "+msg) })
			if len(got) != len(tt.want) {
				t.Fatalf("Validate = %q, want %d problems like %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("Validate problem %d = %q, want prefix %q", i, got[i], w)
				}
			}
		})
	}
}

func TestNewRejectsInvalid(t *testing.T) {
	c := defaults("10.0.0.53:53")
	c.BlockedRcode = "NOPE"
	if _, err := New(c, Deps{}); err == nil || !strings.Contains(err.Error(), "dns.blockedRcode") {
		t.Errorf("New(blockedRcode NOPE) error = %v, want one naming dns.blockedRcode", err)
	}
}
