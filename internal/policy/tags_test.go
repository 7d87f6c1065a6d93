package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTags(t *testing.T) {
	tags := Tags()
	if len(tags) != 1 || tags[0].Name != "AzureKubernetesService" {
		t.Fatalf("Tags() = %d tags, want exactly AzureKubernetesService", len(tags))
	}
	aks := tags[0]
	if aks.Version == "" || !strings.HasPrefix(aks.Source, "https://learn.microsoft.com/") || aks.SourceSnapshot == "" {
		t.Fatalf("AzureKubernetesService version %q source %q snapshot %q: want all set", aks.Version, aks.Source, aks.SourceSnapshot)
	}
	// The core, required, http/https entries of data/aks-egress-rules.yaml.
	want := []string{
		"https:443 *.hcp.<location>.azmk8s.io",
		"https:443 mcr.microsoft.com",
		"https:443 *.data.mcr.microsoft.com",
		"https:443 mcr-0001.mcr-msedge.net",
		"https:443 management.azure.com",
		"https:443 login.microsoftonline.com",
		"https:443 packages.microsoft.com",
		"https:443 acs-mirror.azureedge.net",
		"https:443 packages.aks.azure.com",
	}
	var got []string
	for _, e := range aks.Entries {
		got = append(got, e.Protocol+":"+itoa(int(e.Port))+" "+e.FQDN)
		if e.Source != aks.Source || e.SourceSnapshot != aks.SourceSnapshot || e.Purpose == "" {
			t.Errorf("entry %s: source %q snapshot %q purpose %q, want the tag's source and a purpose", e.FQDN, e.Source, e.SourceSnapshot, e.Purpose)
		}
		p, err := e.Pattern("westeurope")
		if err != nil || strings.Contains(p.String(), "<") {
			t.Errorf("entry %s: Pattern(westeurope) = %q, %v", e.FQDN, p, err)
		}
		if _, err := e.Pattern(""); e.NeedsLocation() == (err == nil) {
			t.Errorf("entry %s: NeedsLocation %v but Pattern(\"\") error %v", e.FQDN, e.NeedsLocation(), err)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("AzureKubernetesService entries (-want +got):\n%s", diff)
	}
	if tag, ok := Tag("azurekubernetesservice"); !ok || tag.Name != "AzureKubernetesService" {
		t.Fatalf("Tag(azurekubernetesservice) = %q, %v, want AzureKubernetesService", tag.Name, ok)
	}
	if _, ok := Tag("WindowsUpdate"); ok {
		t.Fatalf("Tag(WindowsUpdate) found, want not found (no source data for it)")
	}
}

func tagConfig(location string, protos ...string) Config {
	return Config{Location: location, RuleCollectionGroups: []RuleCollectionGroup{group(100,
		coll("aks", TypeApplication, 100, ActionAllow, Rule{Name: "tag", SourceAddresses: []string{"10.0.0.0/8"}, Protocols: protos, FqdnTags: []string{"AzureKubernetesService"}}),
	)}}
}

func TestTagExpansion(t *testing.T) {
	hcp := tcp("10.1.0.5", "20.1.2.3:443", AppHTTPS, "abc123.hcp.eastus.azmk8s.io")
	hcpWest := tcp("10.1.0.5", "20.1.2.3:443", AppHTTPS, "abc123.hcp.westus.azmk8s.io")
	mcr := tcp("10.1.0.5", "20.1.2.3:443", AppHTTPS, "mcr.microsoft.com")
	blob := tcp("10.1.0.5", "20.1.2.3:443", AppHTTPS, "eastus.data.mcr.microsoft.com")
	mcrHTTP := tcp("10.1.0.5", "20.1.2.3:80", AppHTTP, "mcr.microsoft.com")
	tagAllow := allow(TypeApplication, "g100", "aks", "tag")
	warnPath := "ruleCollectionGroups[0].ruleCollections[0].rules[0].fqdnTags[0]"
	tests := []struct {
		name     string
		cfg      Config
		flows    []Flow
		want     []Decision
		warnings []Warning
	}{
		{
			name:  "with location",
			cfg:   tagConfig("eastus"),
			flows: []Flow{hcp, hcpWest, mcr, blob, mcrHTTP},
			want:  []Decision{tagAllow, Deny(ReasonNoMatch), tagAllow, tagAllow, Deny(ReasonNoMatch)},
		},
		{
			name:     "without location",
			cfg:      tagConfig(""),
			flows:    []Flow{hcp, mcr, blob},
			want:     []Decision{Deny(ReasonNoMatch), tagAllow, tagAllow},
			warnings: []Warning{{warnPath, "AzureKubernetesService entry *.hcp.<location>.azmk8s.io skipped: set policy.location to expand <location>"}},
		},
		{
			name:  "rule protocols include the entries'",
			cfg:   tagConfig("eastus", "https:443", "http:80"),
			flows: []Flow{hcp, mcr, mcrHTTP},
			want:  []Decision{tagAllow, tagAllow, Deny(ReasonNoMatch)},
		},
		{
			name:     "rule protocols exclude the entries'",
			cfg:      tagConfig("eastus", "http:80"),
			flows:    []Flow{hcp, mcr, mcrHTTP},
			want:     []Decision{Deny(ReasonNoMatch), Deny(ReasonNoMatch), Deny(ReasonNoMatch)},
			warnings: []Warning{{warnPath, "no entry of AzureKubernetesService is used: its entries are for protocols this rule does not list (http:80)"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, tt.cfg)
			if diff := cmp.Diff(tt.warnings, p.Warnings()); diff != "" {
				t.Fatalf("Warnings() (-want +got):\n%s", diff)
			}
			for i, f := range tt.flows {
				if got := p.Decide(f); got != tt.want[i] {
					t.Errorf("Decide(%s %s:%d) = %+v, want %+v", f.Name, f.App, f.Dst.Port(), got, tt.want[i])
				}
			}
		})
	}
}

// TestTagSourceRestriction: a tag rule's sourceAddresses still apply.
func TestTagSourceRestriction(t *testing.T) {
	p := mustCompile(t, tagConfig("eastus"))
	if got := p.Decide(tcp("192.168.0.1", "20.1.2.3:443", AppHTTPS, "mcr.microsoft.com")); got != Deny(ReasonNoMatch) {
		t.Fatalf("Decide(mcr from outside the rule's sources) = %+v, want deny no_match", got)
	}
	if got := p.AllowsName(addr("10.0.0.1"), name(t, "packages.aks.azure.com")); !got.Allowed() {
		t.Fatalf("AllowsName(packages.aks.azure.com) = %+v, want allow", got)
	}
}
