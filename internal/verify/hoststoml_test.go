package verify

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseHostsTOMLOrder checks that host entries keep file order, not
// the alphabetical order a map would give, in the layouts containerd's
// documentation uses.
func TestParseHostsTOMLOrder(t *testing.T) {
	// Shaped after containerd's docs/hosts.md examples.
	in := `server = "https://registry-1.docker.io"    # Exclude this to not use upstream

[host."https://z.example"]
  capabilities = ["pull", "resolve"]
  ca = "/etc/containerd/certs.d/docker.io/z.crt"   # a single path
  client = [["/etc/certs/client.cert", "/etc/certs/client.key"]]
  dial_timeout = "5s"

[host."https://z.example".header]
  x-custom-1 = "value"
  x-custom-2 = ["value1", "value2"]

[host."https://a.example"]
  capabilities = ["pull"]                   # won't resolve tag to digest from this host
  skip_verify = true

[host."https://m.example:5000/v2/mirror"]
  override_path = true
  ca = ["/a.pem", "/b.pem"]
`
	got, err := parseHostsTOML([]byte(in))
	if err != nil {
		t.Fatalf("parseHostsTOML() error = %v", err)
	}
	want := hostsFile{
		Server: hostEntry{URL: "https://registry-1.docker.io"},
		Hosts: []hostEntry{
			{URL: "https://z.example", Capabilities: []string{"pull", "resolve"}, CA: []string{"/etc/containerd/certs.d/docker.io/z.crt"},
				Header: map[string][]string{"x-custom-1": {"value"}, "x-custom-2": {"value1", "value2"}}},
			{URL: "https://a.example", Capabilities: []string{"pull"}, SkipVerify: true},
			{URL: "https://m.example:5000/v2/mirror", OverridePath: true, CA: []string{"/a.pem", "/b.pem"}},
		},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseHostsTOML() mismatch (-want +got):\n%s", d)
	}
}

// TestParseHostsTOMLOrderForms checks that a host's place is where its
// key path is first written, in whichever TOML form.
func TestParseHostsTOMLOrderForms(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{name: "tables", in: "[host.\"c\"]\n[host.\"b\"]\n[host.\"a\"]\n", want: []string{"c", "b", "a"}},
		{name: "header table first", in: "[host.\"z\".header]\nx = \"1\"\n[host.\"a\"]\n[host.\"z\"]\nca = \"c\"\n", want: []string{"z", "a"}},
		{name: "dotted keys", in: "host.\"z\".ca = \"x\"\nhost.\"a\".ca = \"y\"\n", want: []string{"z", "a"}},
		{name: "under [host]", in: "[host]\n\"z\" = {}\n\"a\".capabilities = [\"pull\"]\n", want: []string{"z", "a"}},
		{name: "inline table", in: "host = { \"z\" = { ca = \"x\" }, \"a\" = {} }\n", want: []string{"z", "a"}},
		{name: "literal and bare keys", in: "[host.'https://z']\n[host.a]\n", want: []string{"https://z", "a"}},
		{name: "escaped key", in: "[host.\"https://z\\u0041\"]\n[host.\"https://a\"]\n", want: []string{"https://zA", "https://a"}},
		{name: "none", in: "server = \"https://r\"\n[host]\n", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hf, err := parseHostsTOML([]byte(tt.in))
			if err != nil {
				t.Fatalf("parseHostsTOML(%q) error = %v", tt.in, err)
			}
			var got []string
			for _, h := range hf.Hosts {
				got = append(got, h.URL)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("parseHostsTOML(%q) host order (-want +got):\n%s", tt.in, d)
			}
		})
	}
}

func TestParseHostsTOMLValues(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want hostsFile
	}{
		{
			name: "server settings at top level",
			in:   "server = \"https://s\"\ncapabilities = [\"pull\"]\nca = \"/s.pem\"\nskip_verify = true\noverride_path = true\n[header]\nx = [\"1\", \"2\"]\n",
			want: hostsFile{Server: hostEntry{URL: "https://s", Capabilities: []string{"pull"}, CA: []string{"/s.pem"}, SkipVerify: true,
				OverridePath: true, Header: map[string][]string{"x": {"1", "2"}}}},
		},
		{
			name: "empty capabilities are none, absent are the default",
			in:   "[host.\"a\"]\ncapabilities = []\n[host.\"b\"]\n",
			want: hostsFile{Hosts: []hostEntry{{URL: "a", Capabilities: []string{}}, {URL: "b"}}},
		},
		{
			name: "multi-line strings and arrays",
			in:   "[host.\"a\"]\nca = [\n  '''/x.pem''', # first\n  \"\"\"\n/y.pem\"\"\",\n]\n",
			want: hostsFile{Hosts: []hostEntry{{URL: "a", CA: []string{"/x.pem", "/y.pem"}}}},
		},
		{
			name: "unknown keys and tables are ignored",
			in:   "version = 2\n[plugins.x]\ny = 1\n[[other]]\nz = 1\n[host.\"a\"]\nclient = [[\"c\", \"k\"]]\n[host.\"a\".other]\nq = 1\n",
			want: hostsFile{Hosts: []hostEntry{{URL: "a"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHostsTOML([]byte(tt.in))
			if err != nil {
				t.Fatalf("parseHostsTOML(%q) error = %v", tt.in, err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("parseHostsTOML(%q) mismatch (-want +got):\n%s", tt.in, d)
			}
			for _, h := range got.Hosts {
				if got, want := h.has("pull"), h.Capabilities == nil || len(h.Capabilities) > 0; got != want {
					t.Errorf("%q.has(pull) = %v, want %v", h.URL, got, want)
				}
			}
		})
	}
}

// TestParseHostsTOMLErrors checks that malformed or mistyped input is an
// error naming the line (and, for TOML syntax, the column).
func TestParseHostsTOMLErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // substring of the error
	}{
		{name: "missing value", in: "server = ", want: "line 1, column "},
		{name: "unterminated string", in: "# c\nserver = \"x", want: "line 2, column "},
		{name: "unterminated header", in: "\n\n[host.\"a\"", want: "line 3, column "},
		{name: "key without value", in: "capabilities", want: "line 1, column "},
		{name: "array without comma", in: "[host.\"a\"]\nca = [\"a\" \"b\"]", want: "line 2, column "},
		{name: "capabilities not an array", in: "[host.\"a\"]\ncapabilities = \"pull\"", want: "line 2, column "},
		{name: "override_path not a bool", in: "\noverride_path = \"yes\"", want: "line 2, column "},
		{name: "skip_verify not a bool", in: "[host.\"a\"]\n\nskip_verify = 1", want: "line 3, column "},
		{name: "array of host tables", in: "[[host]]\n", want: "line 1, column "},
		{name: "duplicate host table", in: "[host.\"a\"]\n[host.\"a\"]\n", want: "line 2, column "},
		{name: "duplicate key", in: "[host.\"a\"]\nca = \"x\"\nca = \"y\"\n", want: "line 3, column "},
		{name: "ca a number", in: "[host.\"a\"]\n\nca = 1\n", want: "line 3: host.a.ca: is a int64"},
		{name: "ca array of numbers", in: "[host.\"a\"]\nca = [\"x\", 2]\n", want: "line 2: host.a.ca: element 1 is a int64"},
		{name: "header a number", in: "[host.\"a\".header]\n\nx-n = 1\n", want: "line 3: host.a.header.x-n: is a int64"},
		{name: "server header inline", in: "header = { x = true }\n", want: "line 1: header.x: is a bool"},
		{name: "not utf-8", in: "server = \"\xff\"\n", want: "line 1, column "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseHostsTOML([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseHostsTOML(%q) error = %v, want one containing %q", tt.in, err, tt.want)
			}
		})
	}
}
