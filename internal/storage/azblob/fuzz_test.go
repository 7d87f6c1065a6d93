package azblob

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseConfig: any registry.storage.url, with an account key in the
// environment, gets a config or an error, never a panic; an accepted one
// names a container, and its name for logs never holds the key.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"azblob://airlock",
		"azblob://airlock?endpoint=http://127.0.0.1:10000/devstoreaccount1&create=true",
		"azblob://user:pass@airlock",
		"azblob://airlock?endpoint=ftp://x?y",
		"azblob:///",
		"azblob://a?create=maybe&bogus=1",
	} {
		f.Add(s)
	}
	const key = "c2VjcmV0LWtleS1mb3ItZnV6emluZw=="
	env := func(k string) string {
		switch k {
		case envAccount:
			return "fuzzaccount"
		case envKey:
			return key
		}
		return ""
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		c, err := parseConfig(u, env)
		if err != nil {
			return
		}
		if c.container == "" {
			t.Fatalf("parseConfig(%q) accepted an empty container", raw)
		}
		if strings.Contains(c.String(), key) {
			t.Fatalf("parseConfig(%q): the storage's name carries the key", raw)
		}
	})
}
