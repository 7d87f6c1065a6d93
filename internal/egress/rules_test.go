package egress

import (
	"flag"

	"github.com/airlockdev/airlock/internal/policy"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestRulesetGolden(t *testing.T) {
	tests := []struct {
		name string
		in   RulesInput
	}{
		{"gateway-rules", RulesInput{TransparentPort: 15001}},
		{"gateway-rules-dns", RulesInput{TransparentPort: 15001, DNSPort: 53}},
		{"gateway-rules-l4", RulesInput{TransparentPort: 15001, L4Port: 15002, L4Ports: []policy.PortRange{
			{Proto: policy.ProtoTCP, From: 22, To: 22}, {Proto: policy.ProtoTCP, From: 1, To: 1000}, {Proto: policy.ProtoUDP, From: 123, To: 123},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Ruleset(tt.in)
			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Ruleset(%+v) =\n%s\nwant (%s)\n%s", tt.in, got, path, want)
			}
		})
	}
}
