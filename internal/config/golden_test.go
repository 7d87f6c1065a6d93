package config

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestGolden decodes example files and compares the normalized
// configuration (defaults applied, paths resolved) rendered as YAML with
// testdata/NAME.golden. The rendering is itself a valid config file that
// decodes to the same File.
func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		load func() (*File, error)
	}{
		{"full", func() (*File, error) { return parseTestdata("full.yaml") }},
		{"minimal", func() (*File, error) { return parseTestdata("minimal.yaml") }},
		{"default", func() (*File, error) { return Load("") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := tt.load()
			if err != nil {
				t.Fatalf("load %s:\n%v", tt.name, err)
			}
			got, err := yaml.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s rendered =\n%s\nwant (%s)\n%s", tt.name, got, golden, want)
			}
			// Name "x" resolves against ".": the rendered paths stay as they are.
			again, err := Parse("x", got)
			if err != nil {
				t.Fatalf("Parse(rendered %s):\n%v", tt.name, err)
			}
			if diff := cmp.Diff(f, again, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parse(rendered %s) differs from the original (-orig +again):\n%s", tt.name, diff)
			}
		})
	}
}

func parseTestdata(name string) (*File, error) {
	p := filepath.Join("testdata", name)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return Parse(p, data)
}
