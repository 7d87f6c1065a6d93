package ociclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// Client pulls from one registry API root.
type Client struct {
	// API is the URL of the registry's API root, e.g.
	// http://127.0.0.1:5000/v2 (containerd's override_path may name
	// another path).
	API *url.URL
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
	// Namespace, when set, is sent as the ns query parameter (the
	// upstream host, as containerd sends it to a mirror).
	Namespace string
	// Header is added to every request (User-Agent, hosts.toml headers).
	Header http.Header
	// Username and Password, when Username is set, are sent with HTTP Basic.
	Username, Password string
}

// ResponseError is a registry's answer other than 200 OK.
type ResponseError struct {
	Method string
	URL    string
	Status string // "404 Not Found"
	// Code and Message are the first entry of the registry's JSON error
	// document, when the body is one.
	Code, Message string
	// Body is the start of the response body (at most 512 bytes).
	Body string
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %s %s", e.Method, e.URL, e.Status, strings.TrimSpace(e.Body))
}

// RegistryMessage is the status with the registry's own error code and
// message when it sent one ("404 Not Found MANIFEST_UNKNOWN: …").
func (e *ResponseError) RegistryMessage() string {
	if e.Code != "" || e.Message != "" {
		return fmt.Sprintf("%s %s: %s", e.Status, e.Code, e.Message)
	}
	return e.Status
}

// URL returns the address of repo's kind ("manifests", "blobs") entry what.
func (c *Client) URL(repo, kind, what string) string {
	u := *c.API
	u.Path = path.Join(c.API.Path, repo, kind, what)
	u.RawPath = ""
	if c.Namespace != "" {
		u.RawQuery = url.Values{"ns": {c.Namespace}}.Encode()
	}
	return u.String()
}

// Do sends method for repo's kind entry what with the Accept header
// accept (none when empty) and returns a 200 response; anything else is
// a *ResponseError.
func (c *Client) Do(ctx context.Context, method, repo, kind, what, accept string) (*http.Response, error) {
	u := c.URL(repo, kind, what)
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	for k, vs := range c.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.Username != "" {
		req.SetBasicAuth(c.Username, c.Password)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, responseError(method, u, resp)
	}
	return resp, nil
}

func responseError(method, u string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &ResponseError{Method: method, URL: u, Status: resp.Status, Body: string(b[:min(len(b), 512)])}
	var doc struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if json.Unmarshal(b, &doc) == nil && len(doc.Errors) > 0 {
		e.Code, e.Message = doc.Errors[0].Code, doc.Errors[0].Message
	}
	return e
}
