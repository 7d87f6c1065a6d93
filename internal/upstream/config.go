package upstream

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"

	"github.com/airlockdev/airlock/internal/netclass"
	"github.com/airlockdev/airlock/internal/oci"
)

// Config is the upstream client's part of the registry section of
// airlock.yaml, inlined there by cache.Config (the YAML keys sit beside
// cacheRules). This package owns these keys' types and validation.
type Config struct {
	// CredentialSets name environment variables with upstream
	// credentials; cacheRules[].credentialSet refers to them by name.
	CredentialSets []CredentialSet `yaml:"credentialSets"`
	// Upstreams override where an upstream host is fetched from (tests,
	// mirrors of mirrors, a corporate CA), keyed by host[:port].
	Upstreams map[string]Endpoint `yaml:"upstreams"`
	// UpstreamAllowedInternalRanges are internal or special address ranges
	// (CIDRs without host bits, or single addresses; the classes of
	// internal/netclass) that the client may connect to through a
	// redirect, a token realm or an upstream without an upstreams entry:
	// an on-premises token service or blob store. Empty (default): those
	// connections reach public addresses only; an upstreams entry's own
	// host:port may be any address either way. Parsed once, when the
	// config is decoded (netclass.AllowedRange); Options.AllowedInternal
	// takes its Prefixes.
	UpstreamAllowedInternalRanges netclass.AllowedRanges `yaml:"upstreamAllowedInternalRanges"`
}

// Validate reports every problem with a path relative to the registry
// section ("credentialSets[0].name", `upstreams["host"].url`). The ranges
// were checked when they were decoded.
func (c *Config) Validate(report func(path, msg string)) {
	validateCredentialSets(c.CredentialSets, func(p, msg string) { report("credentialSets"+p, msg) })
	validateUpstreams(c.Upstreams, func(p, msg string) { report("upstreams"+p, msg) })
}

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
	case u.Host == "" || !oci.ValidRegistryHost(u.Host):
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

// validateUpstreams checks registry.upstreams: every key a host[:port],
// every endpoint valid. Paths are relative to the map (`["host"].url`).
func validateUpstreams(m map[string]Endpoint, report func(path, msg string)) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	canonical := map[string]string{}
	for _, k := range keys {
		p := "[" + strconv.Quote(k) + "]"
		if !oci.ValidRegistryHost(k) {
			report(p, "the key must be an upstream host[:port] such as mcr.microsoft.com")
		}
		c := oci.CanonicalRegistryHost(k)
		if prev, dup := canonical[c]; dup {
			report(p, fmt.Sprintf("duplicates %q (host names are case-insensitive; docker.io, index.docker.io and registry-1.docker.io are one host)", prev))
		}
		canonical[c] = k
		m[k].Validate(func(path, msg string) { report(p+"."+path, msg) })
	}
}

// validateCredentialSets checks registry.credentialSets: each set valid,
// names unique. Paths are relative to the list ("[0].name").
func validateCredentialSets(sets []CredentialSet, report func(path, msg string)) {
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
