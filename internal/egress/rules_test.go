package egress

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/airlockdev/airlock/internal/policy"
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
		{"gateway-rules-l4-dns", RulesInput{TransparentPort: 15001, DNSPort: 53, L4Port: 15002, L4Ports: []policy.PortRange{
			{Proto: policy.ProtoTCP, From: 1, To: 65535}, {Proto: policy.ProtoUDP, From: 1, To: 1024},
		}}},
		{"gateway-rules-l4-udp-only", RulesInput{TransparentPort: 15001, L4Port: 15002, L4Ports: []policy.PortRange{
			{Proto: policy.ProtoUDP, From: 123, To: 123}, {Proto: policy.ProtoUDP, From: 500, To: 500},
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

func TestL4Ports(t *testing.T) {
	tcp, udp := policy.ProtoTCP, policy.ProtoUDP
	tests := []struct {
		name   string
		ranges []policy.PortRange
		proto  policy.Proto
		extra  []uint16
		skip   []uint16
		want   string
	}{
		{"none", nil, tcp, nil, []uint16{80, 443}, ""},
		{"only skipped", []policy.PortRange{{Proto: tcp, From: 80, To: 80}, {Proto: tcp, From: 443, To: 443}}, tcp, nil, []uint16{80, 443}, ""},
		{"other proto ignored", []policy.PortRange{{Proto: udp, From: 123, To: 123}}, tcp, nil, nil, ""},
		{"split around skips", []policy.PortRange{{Proto: tcp, From: 1, To: 1000}}, tcp, nil, []uint16{443, 80}, "1-79, 81-442, 444-1000"},
		{"merged", []policy.PortRange{{Proto: tcp, From: 22, To: 22}, {Proto: tcp, From: 20, To: 23}, {Proto: tcp, From: 24, To: 30}}, tcp, nil, nil, "20-30"},
		{"extra added", []policy.PortRange{{Proto: udp, From: 123, To: 123}}, udp, []uint16{443}, nil, "123, 443"},
		{"extra inside a range", []policy.PortRange{{Proto: udp, From: 1, To: 1024}}, udp, []uint16{443}, []uint16{53}, "1-52, 54-1024"},
		{"edges", []policy.PortRange{{Proto: udp, From: 1, To: 65535}}, udp, nil, []uint16{1, 65535}, "2-65534"},
		{"inverted range ignored", []policy.PortRange{{Proto: udp, From: 9, To: 5}}, udp, nil, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := l4Ports(tc.ranges, tc.proto, tc.extra, tc.skip); got != tc.want {
				t.Errorf("l4Ports(%v, %v, %v, %v) = %q, want %q", tc.ranges, tc.proto, tc.extra, tc.skip, got, tc.want)
			}
		})
	}
}
