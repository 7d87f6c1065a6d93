package config

import (
	"testing"

	"gopkg.in/yaml.v3"
)

// mustNode parses in and returns its top-level value.
func mustNode(t *testing.T, in string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(in), &doc); err != nil {
		t.Fatalf("yaml.Unmarshal(%q): %v", in, err)
	}
	return doc.Content[0]
}
