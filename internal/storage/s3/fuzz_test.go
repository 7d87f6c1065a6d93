package s3

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseURL: any registry.storage.url gets a config or an error, never
// a panic, and an accepted one names a bucket and keeps no credentials.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"s3://bucket?region=us-east-1",
		"s3://bucket?region=eu-west-1&endpoint=http://127.0.0.1:9000&create=true",
		"s3://user:pass@bucket?region=x",
		"s3://bucket?endpoint=ftp://x",
		"s3:///?region=",
		"s3://b?region=r&region=s&bogus=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		c, err := parseURL(u)
		if err != nil {
			return
		}
		if c.Bucket == "" {
			t.Fatalf("parseURL(%q) accepted an empty bucket", raw)
		}
		if u.User != nil && strings.Contains(c.String(), u.User.String()) {
			t.Fatalf("parseURL(%q): the storage's name carries the credentials", raw)
		}
	})
}
