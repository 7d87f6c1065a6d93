package cache

import (
	"context"
	"fmt"
	"io"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/upstream"
)

// FromClient adapts the upstream registry client to Upstream.
func FromClient(c *upstream.Client) Upstream { return clientAdapter{c} }

type clientAdapter struct{ c *upstream.Client }

func (a clientAdapter) HeadManifest(ctx context.Context, host, repo string, ref oci.Reference) (oci.Descriptor, error) {
	return a.c.HeadManifest(ctx, host, repo, ref)
}

func (a clientAdapter) GetManifest(ctx context.Context, host, repo string, ref oci.Reference) (oci.Descriptor, []byte, error) {
	m, err := a.c.GetManifest(ctx, host, repo, ref)
	return m.Descriptor, m.Body, err
}

func (a clientAdapter) GetBlob(ctx context.Context, host, repo string, d oci.Digest) (io.ReadCloser, int64, error) {
	return a.c.GetBlob(ctx, host, repo, d, 0)
}

func (a clientAdapter) Referrers(ctx context.Context, host, repo string, subject oci.Digest) ([]oci.Descriptor, error) {
	return a.c.Referrers(ctx, host, repo, subject, "")
}

// Credentials resolves the credential sets the rules use into credentials
// per canonical host (oci.CanonicalRegistryHost) for the upstream client,
// reading the environment through lookupEnv. A variable that is not set,
// or two rules for one host with different sets, is an error naming the
// rule and variable (never a value).
func (c *Config) Credentials(lookupEnv func(string) (string, bool)) (map[string]upstream.Credential, error) {
	sets := map[string]upstream.CredentialSet{}
	for _, s := range c.CredentialSets {
		sets[s.Name] = s
	}
	out := map[string]upstream.Credential{}
	byHost := map[string]string{}
	for _, r := range c.CacheRules {
		if r.CredentialSet == "" {
			continue
		}
		host, _, _, problem := parseSource(r.SourceRepo)
		if problem != "" {
			return nil, fmt.Errorf("cache rule %q: %s", r.Name, problem)
		}
		// Keyed as the upstream client keys credentials: Docker Hub's
		// three names are one host.
		host = oci.CanonicalRegistryHost(host)
		if prev, ok := byHost[host]; ok && prev != r.CredentialSet {
			return nil, fmt.Errorf("cache rule %q uses credential set %q for %s, another rule uses %q: one host takes one set", r.Name, r.CredentialSet, host, prev)
		}
		set, ok := sets[r.CredentialSet]
		if !ok {
			return nil, fmt.Errorf("cache rule %q: no credential set %q", r.Name, r.CredentialSet)
		}
		cred, err := set.Resolve(lookupEnv)
		if err != nil {
			return nil, fmt.Errorf("cache rule %q: %w", r.Name, err)
		}
		byHost[host] = r.CredentialSet
		out[host] = cred
	}
	return out, nil
}
