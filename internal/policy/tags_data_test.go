package policy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite tags/tags.json and the golden files in testdata/")

// aksSource is the layout of tags/aks-egress-rules.yaml (data/aks-egress-rules.yaml).
type aksSource struct {
	SchemaVersion  int    `yaml:"schema_version"`
	Cloud          string `yaml:"cloud"`
	Source         string `yaml:"source"`
	SourceSnapshot string `yaml:"source_snapshot"`
	Rules          []struct {
		FQDN        string `yaml:"fqdn"`
		Ports       []int  `yaml:"ports"`
		Protocol    string `yaml:"protocol"`
		Purpose     string `yaml:"purpose"`
		Requirement string `yaml:"requirement"`
		Feature     string `yaml:"feature"`
		// Not carried into tags: the alternatives and notes are for readers.
		Alternatives []string `yaml:"alternatives"`
		Notes        string   `yaml:"notes"`
	} `yaml:"rules"`
}

// placeholder matches <…> in a published name.
var placeholder = regexp.MustCompile(`<[^>]*>`)

// generateTags derives tags/tags.json from the AKS egress data: the
// AzureKubernetesService tag is every entry with feature core, requirement
// required and protocol http or https, as DESIGN §4 says. <region> means the
// same as <location> in the source; any other placeholder is an error, since
// there is nothing to expand it from.
func generateTags(src []byte) ([]byte, error) {
	var s aksSource
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding the AKS egress data: %w", err)
	}
	if s.SchemaVersion != 1 || s.Source == "" || s.SourceSnapshot == "" {
		return nil, fmt.Errorf("AKS egress data: want schema_version 1 with source and source_snapshot")
	}
	version := s.SourceSnapshot
	if at := bytes.IndexByte([]byte(version), '@'); at >= 0 && len(version) > at+13 {
		version = version[:at+13] // repo@ and 12 hex digits
	}
	tag := FQDNTag{
		Name:           "AzureKubernetesService",
		Version:        version,
		Description:    "Names an AKS node needs for the base cluster (" + s.Cloud + "): API server, MCR, ARM, Entra ID, packages and binaries.",
		Source:         s.Source,
		SourceSnapshot: s.SourceSnapshot,
		Selection:      "feature core, requirement required, protocol http or https",
	}
	for _, r := range s.Rules {
		if r.Feature != "core" || r.Requirement != "required" || (r.Protocol != "http" && r.Protocol != "https") {
			continue
		}
		fqdn := placeholder.ReplaceAllStringFunc(r.FQDN, func(p string) string {
			if p == "<region>" {
				return LocationPlaceholder
			}
			return p
		})
		for _, p := range placeholder.FindAllString(fqdn, -1) {
			if p != LocationPlaceholder {
				return nil, fmt.Errorf("entry %s: placeholder %s cannot be expanded", r.FQDN, p)
			}
		}
		for _, port := range r.Ports {
			e := TagEntry{FQDN: fqdn, Protocol: r.Protocol, Port: uint16(port), Purpose: r.Purpose, Source: s.Source, SourceSnapshot: s.SourceSnapshot}
			if _, err := e.Pattern("eastus"); err != nil {
				return nil, fmt.Errorf("entry %s: %w", r.FQDN, err)
			}
			tag.Entries = append(tag.Entries, e)
		}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false) // keep <location> readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(tagFile{SchemaVersion: 1, Tags: []FQDNTag{tag}}); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// TestTagData checks that tags/tags.json is what generateTags makes of
// tags/aks-egress-rules.yaml; with -update (go generate) it rewrites it.
func TestTagData(t *testing.T) {
	src, err := os.ReadFile("tags/aks-egress-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := generateTags(src)
	if err != nil {
		t.Fatalf("generateTags: %v", err)
	}
	if *update {
		if err := os.WriteFile("tags/tags.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(tagJSON, want) && !*update {
		t.Fatalf("tags/tags.json is stale: run `go generate ./internal/policy` (go test -run TestTagData -update)")
	}
}
