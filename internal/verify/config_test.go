package verify

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		t    Targets
		want []string // "key: part of message"
	}{
		{"empty", Targets{}, nil},
		{"full", Targets{DeniedAddress: "198.19.0.10:443", DeniedAddress6: "[fdaa::10]:443", DeniedName: "exfil.example",
			AllowedName: "allowed.example:443", OutsideResolver: "198.19.0.53:53", MetadataAddress: "169.254.169.254:80",
			DoHURL: "https://doh.example/dns-query", RegistryImage: "mcr.microsoft.com/oss/kubernetes/pause:3.6"}, nil},
		{"bad", Targets{DeniedAddress: "exfil.example:443", DeniedAddress6: "198.19.0.10:443", AllowedName: "198.19.0.20:443",
			OutsideResolver: "198.19.0.53", MetadataAddress: "169.254.169.254:0", DeniedName: "a..b", DoHURL: "http://doh.example/",
			RegistryImage: "Bad Ref"}, []string{
			"targets.deniedAddress: host \"exfil.example\" must be an IP address",
			"targets.deniedAddress6: host \"198.19.0.10\" must be an IPv6 address",
			"targets.allowedName: host \"198.19.0.20\" must be a name",
			"targets.outsideResolver: must be host:port",
			"targets.metadataAddress: port \"0\"",
			"targets.deniedName: must be a DNS name",
			"targets.dohURL: must be an https:// URL",
			"targets.registryImage: image reference",
		}},
		{"off-link IPv6", Targets{OffLinkIPv6: "fdaa:99::66"}, nil},
		{"off-link IPv6 with a port", Targets{OffLinkIPv6: "[fdaa:99::66]:1"}, []string{"targets.offLinkIPv6: must be an IPv6 address without a port"}},
		{"off-link IPv4", Targets{OffLinkIPv6: "198.19.0.10"}, []string{"targets.offLinkIPv6: must be an IPv6 address"}},
		{"link-local", Targets{OffLinkIPv6: "fe80::1"}, []string{"targets.offLinkIPv6: \"fe80::1\" is not a routed unicast address"}},
		{"multicast", Targets{OffLinkIPv6: "ff02::2"}, []string{"targets.offLinkIPv6: \"ff02::2\" is not a routed unicast address"}},
		{"mapped", Targets{OffLinkIPv6: "::ffff:198.19.0.10"}, []string{"targets.offLinkIPv6: must be an IPv6 address"}},
		{"IPv6 in deniedAddress", Targets{DeniedAddress: "[fdaa::10]:443"}, []string{"targets.deniedAddress: host \"fdaa::10\" must be an IPv4 address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			c := Config{Targets: tt.t}
			c.Validate(func(path, msg string) { got = append(got, path+": "+msg) })
			if len(got) != len(tt.want) {
				t.Fatalf("Validate reported %q, want %d problems %q", got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d = %q, want prefix %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestSetDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.Targets.MetadataAddress != DefaultMetadataAddress || c.Targets.DeniedPort != DefaultDeniedPort {
		t.Errorf("SetDefaults() = %+v, want metadata %s and deniedPort %d", c.Targets, DefaultMetadataAddress, DefaultDeniedPort)
	}
}
