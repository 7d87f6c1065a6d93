package upstream

import (
	"fmt"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Endpoint is one entry of registry.upstreams, keyed by the upstream host
// name as cache rules name it (e.g. mcr.microsoft.com, docker.io). It says
// where that upstream's registry API is really fetched from.
type Endpoint struct {
	// URL is the registry's base URL, scheme and host[:port] only (the API
	// lives under /v2/). Default https://<host>; for docker.io the default
	// is https://registry-1.docker.io. Tests point it at loopback, e.g.
	// http://127.0.0.1:5000.
	URL string `yaml:"url"`
	// CAFile is a PEM file of extra root certificates trusted for this
	// endpoint, added to the system roots. Empty: system roots only.
	// It is read once, by New.
	CAFile string `yaml:"caFile" config:"path"`
}

// CredentialSet names environment variables holding a username and a
// password (or token) for an upstream, as ACR's credential sets name Key
// Vault secrets. Cache rules refer to it by Name.
type CredentialSet struct {
	// Name identifies the set in cacheRules[].credentialSet. Required.
	Name string `yaml:"name"`
	// UsernameEnv is the environment variable holding the username. Required.
	UsernameEnv string `yaml:"usernameEnv"`
	// PasswordEnv is the environment variable holding the password or token. Required.
	PasswordEnv string `yaml:"passwordEnv"`
}

// Credential is a resolved username and password for one upstream. Its
// String and GoString never show the password, so logging it is safe.
type Credential struct {
	Username string
	Password string
}

func (c Credential) String() string { return c.Username + ":<redacted>" }
func (c Credential) GoString() string {
	return "upstream.Credential{Username:" + strconv.Quote(c.Username) + ", Password:<redacted>}"
}

// Resolve reads the set's variables through lookupEnv (os.LookupEnv in
// main; a map in tests). An unset or empty variable is an error that names
// the variable, never its value.
func (s CredentialSet) Resolve(lookupEnv func(string) (string, bool)) (Credential, error) {
	user, ok := lookupEnv(s.UsernameEnv)
	if !ok || user == "" {
		return Credential{}, fmt.Errorf("credential set %q: environment variable %s is not set", s.Name, s.UsernameEnv)
	}
	pass, ok := lookupEnv(s.PasswordEnv)
	if !ok || pass == "" {
		return Credential{}, fmt.Errorf("credential set %q: environment variable %s is not set", s.Name, s.PasswordEnv)
	}
	return Credential{Username: user, Password: pass}, nil
}

// Validate reports what is wrong with the endpoint, with paths relative to
// it ("url", "caFile"). It does no I/O: an unreadable caFile is reported by New.
func (e Endpoint) Validate(report func(path, msg string)) {
	if e.URL == "" {
		return
	}
	u, err := url.Parse(e.URL)
	switch {
	case err != nil:
		report("url", "is not a URL; write scheme://host[:port], e.g. https://mcr.microsoft.com")
		return
	case u.Scheme != "https" && u.Scheme != "http":
		report("url", fmt.Sprintf("scheme %q is not supported; use https (or http for a test registry)", u.Scheme))
	case u.User != nil:
		report("url", "must not carry credentials; use a credential set")
	case u.Host == "" || !ValidHost(u.Host):
		report("url", "needs a host[:port], e.g. https://mcr.microsoft.com")
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "":
		report("url", "must be scheme://host[:port] only; the registry API is always under /v2/")
	}
	if e.CAFile != "" && u.Scheme == "http" {
		report("caFile", "is only used with an https url")
	}
}

// Validate reports what is wrong with the set, with paths relative to it.
func (s CredentialSet) Validate(report func(path, msg string)) {
	if s.Name == "" {
		report("name", "must be set")
	}
	for _, f := range []struct{ path, v string }{{"usernameEnv", s.UsernameEnv}, {"passwordEnv", s.PasswordEnv}} {
		switch {
		case f.v == "":
			report(f.path, "must name an environment variable")
		case !validEnvName(f.v):
			report(f.path, fmt.Sprintf("%q is not an environment variable name (letters, digits and _, not starting with a digit)", f.v))
		}
	}
}

// ValidateUpstreams checks registry.upstreams: every key a host[:port],
// every endpoint valid. Paths are relative to the map (`["host"].url`).
func ValidateUpstreams(m map[string]Endpoint, report func(path, msg string)) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	lower := map[string]string{}
	for _, k := range keys {
		p := "[" + strconv.Quote(k) + "]"
		if !ValidHost(k) {
			report(p, "the key must be an upstream host[:port] such as mcr.microsoft.com")
		}
		if prev, dup := lower[strings.ToLower(k)]; dup {
			report(p, fmt.Sprintf("duplicates %q (host names are case-insensitive)", prev))
		}
		lower[strings.ToLower(k)] = k
		m[k].Validate(func(path, msg string) { report(p+"."+path, msg) })
	}
}

// ValidateCredentialSets checks registry.credentialSets: each set valid,
// names unique. Paths are relative to the list ("[0].name").
func ValidateCredentialSets(sets []CredentialSet, report func(path, msg string)) {
	seen := map[string]int{}
	for i, s := range sets {
		p := "[" + strconv.Itoa(i) + "]"
		s.Validate(func(path, msg string) { report(p+"."+path, msg) })
		if s.Name == "" {
			continue
		}
		if first, dup := seen[s.Name]; dup {
			report(p+".name", fmt.Sprintf("duplicate credential set %q (also [%d])", s.Name, first))
			continue
		}
		seen[s.Name] = i
	}
}

func validEnvName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

// dockerHubEndpoint is where docker.io's registry API really lives.
const dockerHubEndpoint = "registry-1.docker.io"

// Normalize applies Docker Hub's naming rules, which the cache must share
// with this client so both key content the same way: the hosts docker.io,
// index.docker.io and registry-1.docker.io are served by
// registry-1.docker.io, and a single-component repository there gets the
// "library/" prefix (alpine → library/alpine). Other hosts are only
// lowercased; repo is returned unchanged for them.
func Normalize(host, repo string) (endpointHost, normalizedRepo string) {
	h := strings.ToLower(host)
	switch h {
	case "docker.io", "index.docker.io", dockerHubEndpoint:
		if repo != "" && !strings.Contains(repo, "/") {
			repo = "library/" + repo
		}
		return dockerHubEndpoint, repo
	}
	return h, repo
}

// ValidHost reports whether s is a host[:port] that can be put in a URL
// as is: a DNS name (letters, digits, '-', '.'), an IPv4 address or a
// bracketed IPv6 address, with an optional decimal port.
func ValidHost(s string) bool {
	if s == "" || len(s) > 261 {
		return false
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		addr, err := netip.ParseAddr(s[1:end])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return false
		}
		rest := s[end+1:]
		if rest == "" {
			return true
		}
		if rest[0] != ':' {
			return false
		}
		return validPort(rest[1:])
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
		if !validPort(port) {
			return false
		}
	}
	if len(host) > 253 || host == "" {
		return false
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n <= 65535 && p[0] != '0'
}
