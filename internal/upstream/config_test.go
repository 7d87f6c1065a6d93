package upstream

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func collect(f func(report func(path, msg string))) []string {
	var out []string
	f(func(path, msg string) { out = append(out, path+": "+msg) })
	return out
}

func TestValidateUpstreams(t *testing.T) {
	tests := []struct {
		name  string
		in    map[string]Endpoint
		paths []string // the paths reported, in order
	}{
		{name: "good", in: map[string]Endpoint{
			"mcr.microsoft.com": {URL: "https://mcr.microsoft.com"},
			"docker.io":         {},
			"127.0.0.1:5000":    {URL: "http://127.0.0.1:5000/"},
			"[::1]:5000":        {URL: "https://[::1]:5000", CAFile: "/etc/ca.pem"},
		}},
		{name: "bad key", in: map[string]Endpoint{"https://mcr.microsoft.com": {}}, paths: []string{`["https://mcr.microsoft.com"]`}},
		{name: "duplicate keys by case", in: map[string]Endpoint{"MCR.microsoft.com": {}, "mcr.microsoft.com": {}}, paths: []string{`["mcr.microsoft.com"]`}},
		{name: "ftp", in: map[string]Endpoint{"a.test": {URL: "ftp://a.test"}}, paths: []string{`["a.test"].url`}},
		{name: "credentials in url", in: map[string]Endpoint{"a.test": {URL: "https://u:p@a.test"}}, paths: []string{`["a.test"].url`}},
		{name: "path", in: map[string]Endpoint{"a.test": {URL: "https://a.test/v2/"}}, paths: []string{`["a.test"].url`}},
		{name: "no host", in: map[string]Endpoint{"a.test": {URL: "https://"}}, paths: []string{`["a.test"].url`}},
		{name: "caFile with http", in: map[string]Endpoint{"a.test": {URL: "http://a.test", CAFile: "ca.pem"}}, paths: []string{`["a.test"].caFile`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var paths []string
			validateUpstreams(tt.in, func(path, msg string) {
				if msg == "" {
					t.Errorf("empty message for %s", path)
				}
				paths = append(paths, path)
			})
			if diff := cmp.Diff(tt.paths, paths); diff != "" {
				t.Errorf("validateUpstreams paths (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateCredentialSets(t *testing.T) {
	got := collect(func(r func(string, string)) {
		validateCredentialSets([]CredentialSet{
			{Name: "hub", UsernameEnv: "HUB_USER", PasswordEnv: "HUB_TOKEN"},
			{Name: "hub", UsernameEnv: "X", PasswordEnv: "Y"},
			{Name: "", UsernameEnv: "1BAD", PasswordEnv: ""},
		}, r)
	})
	want := []string{
		`[1].name: duplicate credential set "hub" (also [0])`,
		`[2].name: must be set`,
		`[2].usernameEnv: "1BAD" is not an environment variable name (letters, digits and _, not starting with a digit)`,
		`[2].passwordEnv: must name an environment variable`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("validateCredentialSets (-want +got):\n%s", diff)
	}
}

func TestCredentialSetResolve(t *testing.T) {
	env := map[string]string{"HUB_USER": "ci", "HUB_TOKEN": "s3cret", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cr, err := CredentialSet{Name: "hub", UsernameEnv: "HUB_USER", PasswordEnv: "HUB_TOKEN"}.Resolve(lookup)
	if err != nil || cr != (Credential{"ci", "s3cret"}) {
		t.Errorf("Resolve = %v, %v, want ci/s3cret", cr, err)
	}
	for _, s := range []CredentialSet{
		{Name: "hub", UsernameEnv: "MISSING", PasswordEnv: "HUB_TOKEN"},
		{Name: "hub", UsernameEnv: "HUB_USER", PasswordEnv: "EMPTY"},
	} {
		_, err := s.Resolve(lookup)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Resolve(%+v) = %v, want an error naming the variable only", s, err)
		}
	}
}

func TestCredentialNeverPrintsPassword(t *testing.T) {
	cr := Credential{Username: "ci", Password: "s3cret"}
	holder := struct{ C Credential }{cr}
	for _, s := range []string{fmt.Sprint(cr), fmt.Sprintf("%v %+v %#v %s", cr, cr, cr, cr), fmt.Sprintf("%v %+v %#v", holder, holder, holder)} {
		if strings.Contains(s, "s3cret") {
			t.Errorf("formatted credential %q shows the password", s)
		}
	}
}

func TestNewRejectsBadEndpoints(t *testing.T) {
	for _, eps := range []map[string]Endpoint{
		{"a.test": {URL: "ftp://a.test"}},
		{"a/b": {}},
		{"a.test": {URL: "https://a.test", CAFile: "/nonexistent/ca.pem"}},
	} {
		if _, err := New(Options{Endpoints: eps}); err == nil {
			t.Errorf("New(%v) = nil error", eps)
		}
	}
}

// Credentials are keyed by the canonical host: Docker Hub's names share
// one entry, so two different credentials for them are refused rather
// than one picked at random.
func TestNewCredentialsByCanonicalHost(t *testing.T) {
	same := Credential{Username: "u", Password: "p"}
	if _, err := New(Options{Credentials: map[string]Credential{"docker.io": same, "Index.Docker.io": same}}); err != nil {
		t.Errorf("New(one credential under two Docker Hub names) = %v, want nil", err)
	}
	_, err := New(Options{Credentials: map[string]Credential{"docker.io": same, "registry-1.docker.io": {Username: "v", Password: "q"}}})
	if err == nil || !strings.Contains(err.Error(), "two different credentials for docker.io") {
		t.Errorf("New(two credentials for Docker Hub) = %v, want an error naming docker.io", err)
	}
}
