package s3

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// config is what a storage URL says.
type config struct {
	Bucket   string
	Region   string // "" takes the SDK's (AWS_REGION, the profile)
	Endpoint string // scheme://host[:port] of an S3-compatible server; "" for AWS
	Create   bool   // create the bucket when it is missing
}

// acceptedParams are the query parameters a storage URL may carry.
var acceptedParams = []string{"region", "endpoint", "create"}

// bucketName is S3's bucket naming rule (3 to 63 lowercase letters,
// digits, dots and hyphens, starting and ending with a letter or digit).
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// parseURL reads s3://BUCKET?region=REGION[&endpoint=http://HOST:PORT][&create=true].
func parseURL(u *url.URL) (config, error) {
	var c config
	if u.Scheme != "s3" {
		return c, fmt.Errorf("storage URL %q: scheme is %q, want s3://BUCKET?region=REGION", u.Redacted(), u.Scheme)
	}
	if u.User != nil {
		return c, fmt.Errorf("storage URL s3://%s: credentials do not belong in the URL; give them through the AWS environment (AWS_ACCESS_KEY_ID, a profile, an instance role)", u.Host)
	}
	if u.Path != "" && u.Path != "/" || u.Opaque != "" {
		return c, fmt.Errorf("storage URL %q: want s3://BUCKET with no path (a bucket holds one registry)", u.Redacted())
	}
	c.Bucket = u.Host
	if !bucketName.MatchString(c.Bucket) {
		return c, fmt.Errorf("storage URL %q: %q is not an S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens)", u.Redacted(), c.Bucket)
	}
	q := u.Query()
	for k, v := range q {
		if !slices.Contains(acceptedParams, k) {
			return c, fmt.Errorf("storage URL s3://%s: unknown parameter %q (accepted: %s)", c.Bucket, k, strings.Join(acceptedParams, ", "))
		}
		if len(v) != 1 {
			return c, fmt.Errorf("storage URL s3://%s: parameter %q given %d times, want once", c.Bucket, k, len(v))
		}
	}
	c.Region = q.Get("region")
	if q.Has("region") && c.Region == "" {
		return c, fmt.Errorf("storage URL s3://%s: region is empty (e.g. region=us-east-1)", c.Bucket)
	}
	if q.Has("endpoint") {
		e, err := url.Parse(q.Get("endpoint"))
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
			return c, fmt.Errorf("storage URL s3://%s: endpoint %q is not http://HOST:PORT or https://HOST:PORT", c.Bucket, q.Get("endpoint"))
		}
		if e.User != nil {
			return c, fmt.Errorf("storage URL s3://%s: credentials do not belong in the endpoint; give them through the AWS environment", c.Bucket)
		}
		if (e.Path != "" && e.Path != "/") || e.RawQuery != "" || e.Fragment != "" {
			return c, fmt.Errorf("storage URL s3://%s: endpoint %q has a path or query, want only scheme://HOST:PORT", c.Bucket, e.Redacted())
		}
		c.Endpoint = e.Scheme + "://" + e.Host
	}
	if q.Has("create") {
		b, err := strconv.ParseBool(q.Get("create"))
		if err != nil {
			return c, fmt.Errorf("storage URL s3://%s: create=%q, want true or false", c.Bucket, q.Get("create"))
		}
		c.Create = b
	}
	return c, nil
}

// String names the storage: s3://BUCKET, with the endpoint when one is
// given. Never credentials: the URL carries none.
func (c config) String() string {
	if c.Endpoint == "" {
		return "s3://" + c.Bucket
	}
	return "s3://" + c.Bucket + "?endpoint=" + c.Endpoint
}
