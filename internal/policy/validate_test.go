package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	g0  = "ruleCollectionGroups[0]"
	nc  = g0 + ".ruleCollections[0]" // network collection of validConfig
	ac  = g0 + ".ruleCollections[1]" // application collection
	dc  = g0 + ".ruleCollections[2]" // dnat collection
	nr  = nc + ".rules[0]"
	ar  = ac + ".rules[0]"
	dr  = dc + ".rules[0]"
	pat = `'*' is allowed only as the whole first label ("*.example.com") or alone ("*")`
)

func validate(c Config) []string {
	var got []string
	c.Validate(func(path, msg string) { got = append(got, path+": "+msg) })
	return got
}

func TestValidateAcceptsDesignExample(t *testing.T) {
	if got := validate(validConfig()); len(got) != 0 {
		t.Fatalf("Validate(DESIGN example) = %q, want no problems", got)
	}
	if got := validate(Config{}); len(got) != 0 {
		t.Fatalf("Validate(Config{}) = %q, want no problems", got)
	}
}

func TestValidateProblems(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		// policy level
		{"bad location", func(c *Config) { c.Location = "East US" },
			[]string{`location: "East US": want an Azure region name such as eastus (lowercase letters, digits and '-')`}},

		// groups
		{"group name required", func(c *Config) { c.RuleCollectionGroups[0].Name = "" },
			[]string{g0 + ".name: is required"}},
		{"group name form", func(c *Config) { c.RuleCollectionGroups[0].Name = "-a b" },
			[]string{g0 + `.name: "-a b": want 1-80 letters, digits, '_', '.' or '-', starting with a letter or digit`}},
		{"group name too long", func(c *Config) { c.RuleCollectionGroups[0].Name = strings.Repeat("a", 81) },
			[]string{g0 + `.name: "` + strings.Repeat("a", 81) + `": want 1-80 letters, digits, '_', '.' or '-', starting with a letter or digit`}},
		{"group priority required", func(c *Config) { c.RuleCollectionGroups[0].Priority = 0 },
			[]string{g0 + ".priority: is required: 100 (first) to 65000 (last)"}},
		{"group priority low", func(c *Config) { c.RuleCollectionGroups[0].Priority = 99 },
			[]string{g0 + ".priority: 99 is out of range 100..65000"}},
		{"group priority high", func(c *Config) { c.RuleCollectionGroups[0].Priority = 65001 },
			[]string{g0 + ".priority: 65001 is out of range 100..65000"}},
		{"duplicate group", func(c *Config) {
			c.RuleCollectionGroups = append(c.RuleCollectionGroups, RuleCollectionGroup{Name: "aks", Priority: 100})
		}, []string{
			`ruleCollectionGroups[1].name: duplicate name "aks" (also ruleCollectionGroups[0])`,
			`ruleCollectionGroups[1].priority: duplicate priority 100 (also ruleCollectionGroups[0])`,
		}},

		// collections
		{"duplicate collection", func(c *Config) {
			g := &c.RuleCollectionGroups[0]
			g.RuleCollections[1].Name, g.RuleCollections[1].Priority = "aksfwnr", 100
		}, []string{
			ac + `.name: duplicate name "aksfwnr" (also ` + nc + `)`,
			ac + `.priority: duplicate priority 100 (also ` + nc + `)`,
		}},
		{"same collection name in two groups is fine", func(c *Config) {
			c.RuleCollectionGroups = append(c.RuleCollectionGroups, group(200, coll("aksfwnr", TypeNetwork, 100, ActionDeny, netRule("time", "UDP", "*", "*", "123"))))
		}, nil},
		{"collection priority", func(c *Config) { c.RuleCollectionGroups[0].RuleCollections[0].Priority = 70000 },
			[]string{nc + ".priority: 70000 is out of range 100..65000"}},
		{"type required", func(c *Config) { c.RuleCollectionGroups[0].RuleCollections[0].Type = "" },
			[]string{nc + ".type: is required: network, application or dnat"}},
		{"type unknown skips rule checks", func(c *Config) {
			coll := &c.RuleCollectionGroups[0].RuleCollections[0]
			coll.Type = "nat"
			coll.Rules[0].DestinationPorts = nil
		}, []string{nc + `.type: "nat": want network, application or dnat`}},
		{"action required", func(c *Config) { c.RuleCollectionGroups[0].RuleCollections[0].Action = "" },
			[]string{nc + ".action: is required: allow or deny"}},
		{"action case", func(c *Config) { c.RuleCollectionGroups[0].RuleCollections[0].Action = "Allow" },
			[]string{nc + `.action: "Allow": want allow or deny`}},
		{"dnat deny", func(c *Config) { c.RuleCollectionGroups[0].RuleCollections[2].Action = ActionDeny },
			[]string{dc + `.action: "deny": a dnat collection forwards what it matches; want allow`}},

		// rules, all types
		{"rule name required", func(c *Config) { c.RuleCollectionGroups[0].RuleCollections[0].Rules[0].Name = "" },
			[]string{nr + ".name: is required"}},
		{"duplicate rule", func(c *Config) {
			coll := &c.RuleCollectionGroups[0].RuleCollections[0]
			coll.Rules = append(coll.Rules, coll.Rules[0])
		}, []string{nc + `.rules[1].name: duplicate name "time" (also ` + nr + `)`}},
		{"source required", func(c *Config) { c.RuleCollectionGroups[0].RuleCollections[0].Rules[0].SourceAddresses = nil },
			[]string{nr + `.sourceAddresses: is required: IP addresses, CIDRs or "*"`}},
		{"bad sources", func(c *Config) {
			c.RuleCollectionGroups[0].RuleCollections[0].Rules[0].SourceAddresses = []string{"10.0.0.0/33", "10.0.0.1/8", "::ffff:10.0.0.0/104", "", "fe80::1%eth0", "10.0.0.1", "2001:db8::/32", "*"}
		}, []string{
			nr + `.sourceAddresses[0]: "10.0.0.0/33": want an IP address, a CIDR or "*"`,
			nr + `.sourceAddresses[1]: "10.0.0.1/8": host bits set; did you mean 10.0.0.0/8?`,
			nr + `.sourceAddresses[2]: "::ffff:10.0.0.0/104": an IPv4-mapped IPv6 prefix; write the IPv4 CIDR`,
			nr + `.sourceAddresses[3]: empty address`,
			nr + `.sourceAddresses[4]: "fe80::1%eth0": want an IP address, a CIDR or "*"`,
		}},

		// network rules
		{"network protocols required", func(c *Config) { c.RuleCollectionGroups[0].RuleCollections[0].Rules[0].Protocols = nil },
			[]string{nr + ".protocols: is required: one or more of TCP, UDP, ICMP, Any"}},
		{"network protocol unknown", func(c *Config) {
			c.RuleCollectionGroups[0].RuleCollections[0].Rules[0].Protocols = []string{"udp", "SCTP", "any", "Icmp", "https:443"}
		}, []string{
			nr + `.protocols[1]: "SCTP": want TCP, UDP, ICMP or Any`,
			nr + `.protocols[4]: "https:443": want TCP, UDP, ICMP or Any`,
		}},
		{"network destination required", func(c *Config) { c.RuleCollectionGroups[0].RuleCollections[0].Rules[0].DestinationFqdns = nil },
			[]string{nr + ": needs destinationAddresses or destinationFqdns"}},
		{"network destinations", func(c *Config) {
			r := &c.RuleCollectionGroups[0].RuleCollections[0].Rules[0]
			r.DestinationAddresses = []string{"*", "192.0.2.0/24", "192.0.2.300"}
			r.DestinationFqdns = []string{"*.ubuntu.com", "bad..name", "Time.Example."}
		}, []string{
			nr + `.destinationAddresses[2]: "192.0.2.300": want an IP address, a CIDR or "*"`,
			nr + `.destinationFqdns[0]: "*.ubuntu.com": network rules take exact names, no wildcards (as in Azure Firewall); use an application rule for "*.ubuntu.com"`,
			nr + `.destinationFqdns[1]: invalid name "bad..name": empty label at offset 4`,
		}},
		{"network ports required", func(c *Config) { c.RuleCollectionGroups[0].RuleCollections[0].Rules[0].DestinationPorts = nil },
			[]string{nr + `.destinationPorts: is required: ports such as "123", ranges such as "1000-2000", or "*"`}},
		{"network ports", func(c *Config) {
			c.RuleCollectionGroups[0].RuleCollections[0].Rules[0].DestinationPorts = []string{"123", "1000-2000", "*", "70000", "2000-1000", "abc", "0", "", "1-", "-5", "08", "100000"}
		}, []string{
			nr + `.destinationPorts[3]: "70000": port out of range 1..65535`,
			nr + `.destinationPorts[4]: "2000-1000": the range starts above its end`,
			nr + `.destinationPorts[5]: "abc": want a port such as "123", a range such as "1000-2000", or "*"`,
			nr + `.destinationPorts[6]: "0": port out of range 1..65535`,
			nr + `.destinationPorts[7]: "": want a port such as "123", a range such as "1000-2000", or "*"`,
			nr + `.destinationPorts[8]: "1-": want a port such as "123", a range such as "1000-2000", or "*"`,
			nr + `.destinationPorts[9]: "-5": want a port such as "123", a range such as "1000-2000", or "*"`,
			nr + `.destinationPorts[11]: "100000": port out of range 1..65535`,
		}},
		{"network rule with foreign fields", func(c *Config) {
			r := &c.RuleCollectionGroups[0].RuleCollections[0].Rules[0]
			r.TargetFqdns, r.FqdnTags, r.TranslatedAddress, r.TranslatedPort = []string{"a.example"}, []string{"AzureKubernetesService"}, "10.0.0.1", "22"
		}, []string{
			nr + ".targetFqdns: not allowed in a network rule; it belongs to application rules",
			nr + ".fqdnTags: not allowed in a network rule; it belongs to application rules",
			nr + ".translatedAddress: not allowed in a network rule; it belongs to dnat rules",
			nr + ".translatedPort: not allowed in a network rule; it belongs to dnat rules",
		}},

		// application rules
		{"application protocols required", func(c *Config) { c.RuleCollectionGroups[0].RuleCollections[1].Rules[0].Protocols = nil },
			[]string{ar + ".protocols: is required with targetFqdns: http:PORT or https:PORT, e.g. https:443"}},
		{"application tags only need no protocols", func(c *Config) {
			r := &c.RuleCollectionGroups[0].RuleCollections[1].Rules[0]
			r.Protocols, r.TargetFqdns = nil, nil
		}, nil},
		{"application protocols", func(c *Config) {
			c.RuleCollectionGroups[0].RuleCollections[1].Rules[0].Protocols = []string{"Https:443", "ftp:21", "https", "http", "https:0", "http:x", "mssql:1433", "TCP"}
		}, []string{
			ar + `.protocols[1]: "ftp:21": want http:PORT or https:PORT`,
			ar + `.protocols[2]: "https": missing port; want https:PORT, e.g. https:443`,
			ar + `.protocols[3]: "http": missing port; want http:PORT, e.g. http:80`,
			ar + `.protocols[4]: "https:0": port out of range 1..65535`,
			ar + `.protocols[5]: "http:x": want a port such as "123", a range such as "1000-2000", or "*"`,
			ar + `.protocols[6]: "mssql:1433": want http:PORT or https:PORT`,
			ar + `.protocols[7]: "TCP": want http:PORT or https:PORT`,
		}},
		{"application targets", func(c *Config) {
			c.RuleCollectionGroups[0].RuleCollections[1].Rules[0].TargetFqdns = []string{"*", "*.ok.example", "a.*.b", "*foo.com", "**", "foo.*", "*.", "10.0.0.1", "a_b.example"}
		}, []string{
			ar + `.targetFqdns[2]: invalid name pattern "a.*.b": ` + pat,
			ar + `.targetFqdns[3]: invalid name pattern "*foo.com": ` + pat,
			ar + `.targetFqdns[4]: invalid name pattern "**": ` + pat,
			ar + `.targetFqdns[5]: invalid name pattern "foo.*": ` + pat,
			ar + `.targetFqdns[6]: invalid name pattern "*.": suffix: invalid name: empty`,
			ar + `.targetFqdns[7]: invalid name pattern "10.0.0.1": invalid name "10.0.0.1": an IPv4 address, not a name`,
		}},
		{"application unknown tag", func(c *Config) {
			c.RuleCollectionGroups[0].RuleCollections[1].Rules[0].FqdnTags = []string{"azurekubernetesservice", "WindowsUpdate"}
		}, []string{ar + `.fqdnTags[1]: unknown FQDN tag "WindowsUpdate"; known tags: AzureKubernetesService`}},
		{"application target required", func(c *Config) {
			r := &c.RuleCollectionGroups[0].RuleCollections[1].Rules[0]
			r.TargetFqdns, r.FqdnTags = nil, nil
		}, []string{ar + ": needs targetFqdns or fqdnTags"}},
		{"application rule with foreign fields", func(c *Config) {
			r := &c.RuleCollectionGroups[0].RuleCollections[1].Rules[0]
			r.DestinationAddresses, r.DestinationFqdns, r.DestinationPorts = []string{"*"}, []string{"a.example"}, []string{"443"}
		}, []string{
			ar + ".destinationAddresses: not allowed in an application rule; it belongs to network and dnat rules",
			ar + ".destinationFqdns: not allowed in an application rule; it belongs to network rules",
			ar + ".destinationPorts: not allowed in an application rule; it belongs to network and dnat rules",
		}},

		// dnat rules
		{"dnat protocols", func(c *Config) {
			c.RuleCollectionGroups[0].RuleCollections[2].Rules[0].Protocols = []string{"tcp", "ICMP", "Any"}
		}, []string{
			dr + `.protocols[1]: "ICMP": want TCP or UDP`,
			dr + `.protocols[2]: "Any": want TCP or UDP`,
		}},
		{"dnat protocols required", func(c *Config) { c.RuleCollectionGroups[0].RuleCollections[2].Rules[0].Protocols = nil },
			[]string{dr + ".protocols: is required: TCP, UDP or both"}},
		{"dnat address required", func(c *Config) { c.RuleCollectionGroups[0].RuleCollections[2].Rules[0].DestinationAddresses = nil },
			[]string{dr + ".destinationAddresses: is required: the one gateway address DNAT listens on"}},
		{"dnat two addresses", func(c *Config) {
			c.RuleCollectionGroups[0].RuleCollections[2].Rules[0].DestinationAddresses = []string{"198.51.100.1", "198.51.100.2"}
		}, []string{dr + ".destinationAddresses: has 2 entries; a dnat rule listens on exactly one address"}},
		{"dnat cidr", func(c *Config) {
			c.RuleCollectionGroups[0].RuleCollections[2].Rules[0].DestinationAddresses = []string{"198.51.100.0/24"}
		}, []string{dr + `.destinationAddresses[0]: "198.51.100.0/24": want one IP address, the gateway address DNAT listens on`}},
		{"dnat star", func(c *Config) {
			c.RuleCollectionGroups[0].RuleCollections[2].Rules[0].DestinationAddresses = []string{"*"}
		}, []string{dr + `.destinationAddresses[0]: "*": want one IP address, the gateway address DNAT listens on`}},
		{"dnat port required", func(c *Config) { c.RuleCollectionGroups[0].RuleCollections[2].Rules[0].DestinationPorts = nil },
			[]string{dr + ".destinationPorts: is required: the one port DNAT listens on"}},
		{"dnat two ports", func(c *Config) {
			c.RuleCollectionGroups[0].RuleCollections[2].Rules[0].DestinationPorts = []string{"22", "23"}
		}, []string{dr + ".destinationPorts: has 2 entries; a dnat rule listens on exactly one port"}},
		{"dnat port range", func(c *Config) {
			c.RuleCollectionGroups[0].RuleCollections[2].Rules[0].DestinationPorts = []string{"1000-2000"}
		}, []string{dr + `.destinationPorts[0]: "1000-2000": want one port 1..65535, the port DNAT listens on`}},
		{"dnat translation required", func(c *Config) {
			r := &c.RuleCollectionGroups[0].RuleCollections[2].Rules[0]
			r.TranslatedAddress, r.TranslatedPort = "", ""
		}, []string{
			dr + ".translatedAddress: is required: the IP address to forward to",
			dr + ".translatedPort: is required: the port to forward to",
		}},
		{"dnat translation bad", func(c *Config) {
			r := &c.RuleCollectionGroups[0].RuleCollections[2].Rules[0]
			r.TranslatedAddress, r.TranslatedPort = "backend.example", "0"
		}, []string{
			dr + `.translatedAddress: "backend.example": want an IP address`,
			dr + `.translatedPort: "0": want one port 1..65535`,
		}},
		{"dnat rule with foreign fields", func(c *Config) {
			r := &c.RuleCollectionGroups[0].RuleCollections[2].Rules[0]
			r.DestinationFqdns, r.TargetFqdns, r.FqdnTags = []string{"a.example"}, []string{"a.example"}, []string{"AzureKubernetesService"}
		}, []string{
			dr + ".destinationFqdns: not allowed in a dnat rule; it belongs to network rules",
			dr + ".targetFqdns: not allowed in a dnat rule; it belongs to application rules",
			dr + ".fqdnTags: not allowed in a dnat rule; it belongs to application rules",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			got := validate(c)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("Validate() problems (-want +got):\n%s", diff)
			}
			// Compile agrees with Validate.
			_, err := Compile(c)
			var verr *ValidationError
			switch {
			case len(tt.want) == 0 && err != nil:
				t.Fatalf("Compile() = %v, want success", err)
			case len(tt.want) > 0 && !errors.As(err, &verr):
				t.Fatalf("Compile() error = %v, want a *ValidationError", err)
			case len(tt.want) > 0 && len(verr.Problems) != len(tt.want):
				t.Fatalf("Compile() reported %d problems, Validate %d", len(verr.Problems), len(tt.want))
			}
		})
	}
}

func TestValidationErrorText(t *testing.T) {
	c := validConfig()
	c.RuleCollectionGroups[0].Priority = 1
	c.Location = "East US"
	_, err := Compile(c)
	want := "invalid policy: 2 problems\n" +
		"\tlocation: \"East US\": want an Azure region name such as eastus (lowercase letters, digits and '-')\n" +
		"\truleCollectionGroups[0].priority: 1 is out of range 100..65000"
	if err == nil || err.Error() != want {
		t.Fatalf("Compile() error = %q, want %q", err, want)
	}
}
