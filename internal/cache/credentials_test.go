package cache

import (
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/upstream"
)

// Credentials keys each credential by the canonical host, as the upstream
// client does, so Docker Hub's names share one entry and one set.
func TestCredentialsCanonicalHost(t *testing.T) {
	env := map[string]string{"HUB_USER": "u", "HUB_TOKEN": "p", "OTHER_USER": "o", "OTHER_TOKEN": "q"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	sets := []upstream.CredentialSet{
		{Name: "hub", UsernameEnv: "HUB_USER", PasswordEnv: "HUB_TOKEN"},
		{Name: "other", UsernameEnv: "OTHER_USER", PasswordEnv: "OTHER_TOKEN"},
	}
	c := Config{CacheRules: []Rule{
		{Name: "hub", SourceRepo: "index.docker.io/*", TargetRepo: "docker/*", CredentialSet: "hub"},
		{Name: "mcr", SourceRepo: "mcr.microsoft.com/*", TargetRepo: "mcr/*"},
	}}
	c.CredentialSets = sets
	got, err := c.Credentials(lookup)
	if err != nil {
		t.Fatal(err)
	}
	if cr, ok := got["docker.io"]; !ok || cr.Username != "u" || len(got) != 1 {
		t.Errorf("Credentials() = %v, want one entry under docker.io", got)
	}

	c.CacheRules = append(c.CacheRules, Rule{Name: "hub2", SourceRepo: "docker.io/bitnami/*", TargetRepo: "bitnami/*", CredentialSet: "other"})
	if _, err := c.Credentials(lookup); err == nil || !strings.Contains(err.Error(), "one host takes one set") {
		t.Errorf("Credentials() with two sets for Docker Hub's names = %v, want the one-set error", err)
	}
}
