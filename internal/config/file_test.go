package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	hashCI     = "$2a$10$yo3TY.nk6K2dxop2KrtLMOeo5s1192ofa6VzHimpAMhbjOGnvoSze"
	hashPusher = "$2a$04$1DB/LT3oxdtrsZeGeZJqr.fkc6BXnQWz7yNXFMa/xBGIvb7BxPeJW"
)

// parseErr parses in as airlock.yaml and returns its errors, one per line,
// or "".
func parseErr(t *testing.T, in string) string {
	t.Helper()
	f, err := Parse("airlock.yaml", []byte(in))
	if err == nil {
		if f == nil {
			t.Fatalf("Parse(%q) = nil, nil", in)
		}
		return ""
	}
	if f != nil {
		t.Errorf("Parse(%q) returned a File with an error", in)
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse(%q) error %T, want *Errors", in, err)
	}
	return err.Error()
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"minimal", "version: 1\n", ""},
		{"version missing", "log: {level: warn}\n",
			"airlock.yaml:1:1: version: is required; add version: 1 at the top of the file"},
		{"version null", "version:\n",
			"airlock.yaml:1:1: version: is required; add version: 1 at the top of the file"},
		{"version 2", "version: 2\n",
			"airlock.yaml:1:1: version: unsupported version 2; this airlock reads version 1"},
		{"empty file", "",
			"airlock.yaml:1:1: version: is required; add version: 1 at the top of the file"},
		{"comments only", "# nothing\n",
			"airlock.yaml:1:1: version: is required; add version: 1 at the top of the file"},
		{"log format", "version: 1\nlog:\n  format: xml\n",
			`airlock.yaml:3:3: log.format: must be json or text, got "xml"`},
		{"log level", "version: 1\nlog: {level: verbose}\n",
			`airlock.yaml:2:7: log.level: must be debug, info, warn or error, got "verbose"`},
		{"admin listen without port", "version: 1\nadmin: {listen: 127.0.0.1}\n",
			`airlock.yaml:2:9: admin.listen: "127.0.0.1" is not a host:port address (e.g. 127.0.0.1:5000): missing port in address`},
		{"admin listen bad port", "version: 1\nadmin: {listen: 'localhost:http'}\n",
			`airlock.yaml:2:9: admin.listen: port "http" is not a number from 0 to 65535`},
		{"admin listen port too large", "version: 1\nadmin: {listen: ':65536'}\n",
			`airlock.yaml:2:9: admin.listen: port "65536" is not a number from 0 to 65535`},
		{"admin listen bad host", "version: 1\nadmin: {listen: 'no_such host:80'}\n",
			`airlock.yaml:2:9: admin.listen: host "no_such host" is neither an IP address nor a host name`},
		{"admin listen bad IP", "version: 1\nadmin: {listen: '300.1.1.1:80'}\n",
			`airlock.yaml:2:9: admin.listen: host "300.1.1.1" is neither an IP address nor a host name`},
		{"listen forms accepted", "version: 1\nadmin: {listen: ':0'}\nregistry: {listen: 'registry.internal:5000', storage: {path: x}}\n", ""},
		{"listen IPv6 accepted", "version: 1\nadmin: {listen: '[fdaa::1]:9090'}\n", ""},
		{"registry needs storage", "version: 1\nregistry:\n  listen: 127.0.0.1:5000\n",
			"airlock.yaml:2:1: registry.storage.path: must be set when the registry listens (a directory for its content), or set storage.url"},
		{"registry storage empty string", "version: 1\nregistry:\n  listen: 127.0.0.1:5000\n  storage: {path: ''}\n",
			"airlock.yaml:4:13: registry.storage.path: must be set when the registry listens (a directory for its content), or set storage.url"},
		{"tls cert without key", "version: 1\nregistry:\n  tls:\n    certFile: c.pem\n",
			"airlock.yaml:3:3: registry.tls.keyFile: must be set when tls.certFile is set"},
		{"tls key without cert", "version: 1\nregistry:\n  tls: {keyFile: k.pem}\n",
			"airlock.yaml:3:3: registry.tls.certFile: must be set when tls.keyFile is set"},
		{"uploadTTL zero", "version: 1\nregistry: {uploadTTL: 0s}\n",
			"airlock.yaml:2:12: registry.uploadTTL: must be positive, got 0s"},
		{"uploadTTL negative", "version: 1\nregistry: {uploadTTL: -1m}\n",
			"airlock.yaml:2:12: registry.uploadTTL: must be positive, got -1m0s"},
		{"user without name", "version: 1\nregistry:\n  users:\n    - passwordHash: '" + hashCI + "'\n",
			"airlock.yaml:4:7: registry.users[0].name: must be set"},
		{"user name with colon", "version: 1\nregistry:\n  users:\n    - name: a:b\n      passwordHash: '" + hashCI + "'\n",
			"airlock.yaml:4:7: registry.users[0].name: must not contain ':' (HTTP basic auth separates user and password with it)"},
		{"duplicate user", "version: 1\nregistry:\n  users:\n    - {name: ci, passwordHash: '" + hashCI + "'}\n    - {name: ci, passwordHash: '" + hashPusher + "'}\n",
			`airlock.yaml:5:8: registry.users[1].name: duplicate user "ci" (also users[0])`},
		{"user without hash", "version: 1\nregistry:\n  users:\n    - name: ci\n",
			"airlock.yaml:4:7: registry.users[0].passwordHash: must be a bcrypt hash ($2a$, $2b$ or $2y$), e.g. from `airlock registry hash`"},
		{"plain password", "version: 1\nregistry:\n  users:\n    - name: ci\n      passwordHash: hunter2\n",
			"airlock.yaml:5:7: registry.users[0].passwordHash: must be a bcrypt hash ($2a$, $2b$ or $2y$), e.g. from `airlock registry hash`"},
		{"md5 crypt hash", "version: 1\nregistry:\n  users:\n    - name: ci\n      passwordHash: '$apr1$x$y'\n",
			"airlock.yaml:5:7: registry.users[0].passwordHash: must be a bcrypt hash ($2a$, $2b$ or $2y$), e.g. from `airlock registry hash`"},
		{"truncated hash", "version: 1\nregistry:\n  users:\n    - name: ci\n      passwordHash: '" + hashCI[:59] + "'\n",
			"airlock.yaml:5:7: registry.users[0].passwordHash: must be a bcrypt hash ($2a$, $2b$ or $2y$), e.g. from `airlock registry hash`: it has 59 characters, not 60"},
		{"cost not digits", "version: 1\nregistry:\n  users:\n    - name: ci\n      passwordHash: '$2b$1x" + hashCI[6:] + "'\n",
			"airlock.yaml:5:7: registry.users[0].passwordHash: must be a bcrypt hash ($2a$, $2b$ or $2y$), e.g. from `airlock registry hash`: the cost after $2b$ must be two digits and a $"},
		{"cost too high", "version: 1\nregistry:\n  users:\n    - name: ci\n      passwordHash: '$2y$32" + hashCI[6:] + "'\n",
			"airlock.yaml:5:7: registry.users[0].passwordHash: must be a bcrypt hash ($2a$, $2b$ or $2y$), e.g. from `airlock registry hash`: cost 32 is outside 04 to 31"},
		{"cost too low", "version: 1\nregistry:\n  users:\n    - name: ci\n      passwordHash: '$2a$03" + hashCI[6:] + "'\n",
			"airlock.yaml:5:7: registry.users[0].passwordHash: must be a bcrypt hash ($2a$, $2b$ or $2y$), e.g. from `airlock registry hash`: cost 03 is outside 04 to 31"},
		{"hash outside alphabet", "version: 1\nregistry:\n  users:\n    - name: ci\n      passwordHash: '" + hashCI[:20] + "!" + hashCI[21:] + "'\n",
			"airlock.yaml:5:7: registry.users[0].passwordHash: must be a bcrypt hash ($2a$, $2b$ or $2y$), e.g. from `airlock registry hash`: character 21 is not in bcrypt's base64 alphabet"},
		{"valid users", "version: 1\nregistry:\n  users:\n    - {name: ci, passwordHash: '" + hashCI + "'}\n    - {name: pusher, passwordHash: '" + hashPusher + "'}\n", ""},
		{"validation quiet about a value that failed to decode",
			"version: 1\nregistry:\n  tls: {certFile: [a], keyFile: k.pem}\n",
			"airlock.yaml:3:19: registry.tls.certFile: expected a string, got a list"},
		{"validation quiet about the field a typo meant",
			"version: 1\nregistry:\n  users:\n    - name: ci\n      passwordhash: '" + hashCI + "'\n",
			`airlock.yaml:5:7: registry.users[0].passwordhash: unknown field (did you mean "passwordHash"?)`},
		{"node host-only and pod link-local", "version: 1\nnode:\n  hostAllowedAddresses: [169.254.169.254, 168.63.129.16/32]\n  podLinkLocalAccess: Allowed\n", ""},
		{"node podLinkLocalAccess", "version: 1\nnode:\n  podLinkLocalAccess: IMDS\n",
			`airlock.yaml:3:3: node.podLinkLocalAccess: must be None or Allowed, got "IMDS"`},
		{"node hostAllowedAddresses", "version: 1\nnode:\n  hostAllowedAddresses: [169.254.169.254, metadata]\n",
			`airlock.yaml:3:43: node.hostAllowedAddresses[1]: must be a CIDR such as 10.42.0.0/16 or an IP address, got "metadata"`},
		{"registry upstreamAllowedInternalRanges", "version: 1\nregistry:\n  upstreamAllowedInternalRanges: [10.20.0.0/16, 10.30.0.1, fd00::/8]\n", ""},
		{"registry upstreamAllowedInternalRanges host bits", "version: 1\nregistry:\n  upstreamAllowedInternalRanges: [10.20.0.0/16, 10.30.0.1/16]\n",
			`airlock.yaml:3:49: registry.upstreamAllowedInternalRanges[1]: invalid value "10.30.0.1/16": has host bits set; did you mean 10.30.0.0/16?`},
		{"gateway allowedInternalRanges, every bad entry with its index", "version: 1\ngateway:\n  allowedInternalRanges: [10.0.0.1/8, x, 10.0.0.0/8, fd00::1]\n",
			"airlock.yaml:3:27: gateway.allowedInternalRanges[0]: invalid value \"10.0.0.1/8\": has host bits set; did you mean 10.0.0.0/8?\n" +
				"airlock.yaml:3:39: gateway.allowedInternalRanges[1]: invalid value \"x\": want a CIDR such as 10.0.0.0/8 or an IP address"},
		{"unknown section", "version: 1\nregistyr: {}\n",
			`airlock.yaml:2:1: registyr: unknown field (did you mean "registry"?)`},
		{"no validation of a file that is not YAML", "version: 1\n  log: x\n",
			"airlock.yaml:2:1: invalid YAML: mapping values are not allowed in this context"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseErr(t, tt.in); got != tt.want {
				t.Errorf("Parse(%q) errors =\n%s\nwant\n%s", tt.in, got, tt.want)
			}
		})
	}
}

// TestAllErrorsReported checks that decoding and validation errors of one
// file all come back at once, in the order of the file.
func TestAllErrorsReported(t *testing.T) {
	in := `version: 2
log:
  format: xml
  colour: true
admin:
  listen: localhost
registry:
  listen: 127.0.0.1:5000
  tls:
    certFile: registry.crt
  anonymousPull: maybe
  users:
    - name: ci
      passwordHash: secret
    - name: ci
      passwordHash: "` + hashCI + `"
  uploadTTL: 30
  listen: 127.0.0.1:5001
`
	want := []string{
		"airlock.yaml:1:1: version: unsupported version 2; this airlock reads version 1",
		`airlock.yaml:3:3: log.format: must be json or text, got "xml"`,
		"airlock.yaml:4:3: log.colour: unknown field (known fields: format, level)",
		`airlock.yaml:6:3: admin.listen: "localhost" is not a host:port address (e.g. 127.0.0.1:5000): missing port in address`,
		"airlock.yaml:7:1: registry.storage.path: must be set when the registry listens (a directory for its content), or set storage.url",
		"airlock.yaml:9:3: registry.tls.keyFile: must be set when tls.certFile is set",
		`airlock.yaml:11:18: registry.anonymousPull: expected true or false, got "maybe"`,
		"airlock.yaml:14:7: registry.users[0].passwordHash: must be a bcrypt hash ($2a$, $2b$ or $2y$), e.g. from `airlock registry hash`",
		`airlock.yaml:15:7: registry.users[1].name: duplicate user "ci" (also users[0])`,
		"airlock.yaml:17:14: registry.uploadTTL: duration 30 has no unit; add one: 30s, 30m or 30h",
		"airlock.yaml:18:3: registry.listen: duplicate key (first set at line 8, column 3)",
	}
	_, err := Parse("airlock.yaml", []byte(in))
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse error = %v (%T), want *Errors", err, err)
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Parse errors =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(*errs) != len(want) {
		t.Errorf("len(*Errors) = %d, want %d", len(*errs), len(want))
	}
	// Each one is an Error with its fields set.
	var first Error
	if !errors.As(err, &first) || first.Line != 1 || first.Col != 1 || first.Path != "version" || first.File != "airlock.yaml" {
		t.Errorf("errors.As(err, &Error) = %+v, want the version error at airlock.yaml:1:1", first)
	}
}

func TestLoadDefault(t *testing.T) {
	f, err := Load("")
	if err != nil {
		t.Fatalf("Load(\"\") = %v", err)
	}
	checks := []struct{ name, got, want string }{
		{"registry.listen", f.Registry.Listen, "127.0.0.1:5000"},
		{"admin.listen", f.Admin.Listen, "127.0.0.1:9090"},
		{"registry.storage.path", f.Registry.Storage.Path, filepath.Join("airlock-data", "registry")},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("Load(\"\").%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if f.Registry.AnonymousPull == nil || !*f.Registry.AnonymousPull || len(f.Registry.Users) != 0 {
		t.Errorf("Load(\"\").registry anonymousPull = %v, users = %v; want true, none", f.Registry.AnonymousPull, f.Registry.Users)
	}
	d := Default()
	if !strings.Contains(string(d), "version: 1") {
		t.Errorf("Default() = %q, want the embedded file", d)
	}
	d[0] = 'X'
	if Default()[0] == 'X' {
		t.Error("Default() returns the embedded bytes themselves; a caller can change them")
	}
}

func TestLoadResolvesPaths(t *testing.T) {
	dir := t.TempDir()
	in := "version: 1\nregistry:\n  listen: 127.0.0.1:0\n  storage: {path: data/registry}\n  tls: {certFile: ../certs/r.crt, keyFile: /abs/r.key}\n"
	p := filepath.Join(dir, "airlock.yaml")
	if err := os.WriteFile(p, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(p)
	if err != nil {
		t.Fatalf("Load(%s) = %v", p, err)
	}
	checks := []struct{ name, got, want string }{
		{"storage.path", f.Registry.Storage.Path, filepath.Join(dir, "data", "registry")},
		{"tls.certFile", f.Registry.TLS.CertFile, filepath.Join(filepath.Dir(dir), "certs", "r.crt")},
		{"tls.keyFile", f.Registry.TLS.KeyFile, "/abs/r.key"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("Load(%s).registry.%s = %q, want %q", p, c.name, c.got, c.want)
		}
	}

	// Parse resolves against the directory of the name it is given.
	f, err = Parse("conf/airlock.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join("conf", "data", "registry"); f.Registry.Storage.Path != want {
		t.Errorf("Parse(conf/airlock.yaml).registry.storage.path = %q, want %q", f.Registry.Storage.Path, want)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want an error wrapping fs.ErrNotExist", err)
	}

	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("version: 1\n#"+strings.Repeat("x", maxFileSize)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(big)
	want := big + ":1:1: file is 4194305 bytes; the limit is 4194304 bytes (4 MiB)"
	var errs *Errors
	if !errors.As(err, &errs) || err.Error() != want {
		t.Errorf("Load(5 MiB file) = %v, want *Errors %q", err, want)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nadmin: {listen: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	want = bad + `:2:9: admin.listen: "x" is not a host:port address (e.g. 127.0.0.1:5000): missing port in address`
	if !errors.As(err, &errs) || err.Error() != want {
		t.Errorf("Load(bad) = %v, want *Errors %q", err, want)
	}
}

func TestParentPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"registry", ""},
		{"registry.users", "registry"},
		{"registry.users[0]", "registry.users"},
		{"registry.users[0].name", "registry.users[0]"},
		{`registry.upstreams["mcr.microsoft.com"]`, "registry.upstreams"},
		{`registry.upstreams["a].[b"].url`, `registry.upstreams["a].[b"]`},
		{`m["unterminated`, ""},
		{`m[0`, ""},
	}
	for _, tt := range tests {
		if got := parentPath(tt.in); got != tt.want {
			t.Errorf("parentPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"listen", "tls", "storage", "anonymousPull", "users", "uploadTTL"}
	tests := []struct{ in, want string }{
		{"listen", "listen"},
		{"lisen", "listen"},
		{"listne", "listen"},
		{"tsl", "tls"},
		{"TLS", "tls"},
		{"xyz", ""},
		{"anonymouspul", "anonymousPull"},
		{"uploadTtl", "uploadTTL"},
		{"user", "users"},
		{"stor", ""},
		{"sorage", "storage"},
	}
	for _, tt := range tests {
		if got := suggest(tt.in, known); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
