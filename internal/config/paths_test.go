package config

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type pathsLeaf struct {
	File  string   `yaml:"file" config:"path"`
	Files []string `yaml:"files" config:"path"`
	Name  string   `yaml:"name"` // not a path: left alone
}

type pathsRoot struct {
	Leaf pathsLeaf            `yaml:"leaf"`
	Ptr  *pathsLeaf           `yaml:"ptr"`
	List []pathsLeaf          `yaml:"list"`
	Map  map[string]pathsLeaf `yaml:"map"`
}

func TestResolvePaths(t *testing.T) {
	in := `
leaf: {file: a, files: [b, /abs/c, ""], name: n}
ptr: {file: ./d/../e}
list: [{file: f}]
map: {k: {file: g, name: g}}
`
	var got pathsRoot
	d := newDecoder("t.yaml")
	d.decodeDocument([]byte(in), reflect.ValueOf(&got).Elem())
	if errs := d.result(); errs != nil {
		t.Fatal(errs)
	}
	d.resolvePaths(reflect.ValueOf(&got).Elem(), "/etc/airlock")
	j := func(p string) string { return filepath.Join("/etc/airlock", p) }
	want := pathsRoot{
		Leaf: pathsLeaf{File: j("a"), Files: []string{j("b"), "/abs/c", ""}, Name: "n"},
		Ptr:  &pathsLeaf{File: j("e")},
		List: []pathsLeaf{{File: j("f")}},
		Map:  map[string]pathsLeaf{"k": {File: j("g"), Name: "g"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resolvePaths mismatch (-want +got):\n%s", diff)
	}
}

func TestJoinPath(t *testing.T) {
	tests := []struct{ prefix, rel, want string }{
		{"registry", "", "registry"},
		{"registry", "listen", "registry.listen"},
		{"registry", "users[0].name", "registry.users[0].name"},
		{"registry.users", "[0]", "registry.users[0]"},
		{"", "version", "version"},
	}
	for _, tt := range tests {
		if got := joinPath(tt.prefix, tt.rel); got != tt.want {
			t.Errorf("joinPath(%q, %q) = %q, want %q", tt.prefix, tt.rel, got, tt.want)
		}
	}
}
