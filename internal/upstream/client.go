package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
	"golang.org/x/sync/singleflight"
)

// Defaults of Options; a zero field means its default.
const (
	DefaultTimeout         = 10 * time.Second
	DefaultConnectTimeout  = 5 * time.Second
	DefaultIdleTimeout     = 90 * time.Second
	DefaultMaxConnsPerHost = 16
	DefaultRetries         = 3
	DefaultBackoff         = 200 * time.Millisecond
	DefaultUserAgent       = "airlock"
)

// Options configure a Client. Every duration's zero value means its default.
type Options struct {
	// Endpoints override where an upstream host is fetched from, keyed by
	// the host as cache rules name it (registry.upstreams). A host without
	// an entry is fetched from https://<host> (docker.io: from
	// https://registry-1.docker.io).
	Endpoints map[string]Endpoint
	// Credentials per upstream host (same keys as Endpoints), resolved by
	// the caller from credential sets. A host without an entry is accessed
	// anonymously.
	Credentials map[string]Credential
	// Timeout bounds one operation up to its response headers: waiting for
	// a connection slot, every attempt, token fetches and the backoff
	// between attempts. For manifests and referrers it also bounds reading
	// the body; a blob body is bounded by StallTimeout instead.
	// Default 10s (registry.upstreamTimeout).
	Timeout time.Duration
	// ConnectTimeout bounds a TCP connect and a TLS handshake. Default 5s,
	// never more than Timeout.
	ConnectTimeout time.Duration
	// IdleTimeout closes a pooled keep-alive connection unused this long.
	// Default 90s.
	IdleTimeout time.Duration
	// StallTimeout aborts a blob body that delivers no byte for this long
	// (ErrUnavailable). Default: Timeout.
	StallTimeout time.Duration
	// MaxConnsPerHost bounds concurrent requests per upstream endpoint; a
	// blob request holds its slot until its body is closed. Requests wait
	// for a slot within Timeout and ctx. Default 16.
	MaxConnsPerHost int
	// Retries is how many times a request is repeated after a connection
	// error, a 5xx or a 429, as long as Timeout allows. Default 3;
	// negative means none.
	Retries int
	// Backoff is the first retry's delay, doubled per retry, with jitter
	// (each delay is drawn from [d/2, d]). Default 200ms.
	Backoff time.Duration
	// UserAgent is sent with every request. Default "airlock".
	UserAgent string
	// AllowedInternal are internal or special ranges (netclass) that
	// redirects, token realms and upstreams without an Endpoints entry may
	// reach (registry.upstreamAllowedInternalRanges). Empty: only public
	// addresses, and the host:port of each Endpoints entry, whatever its
	// address.
	AllowedInternal []netip.Prefix
	// Resolver resolves every host the client connects to, before the
	// address check. Default: the system resolver.
	Resolver Resolver
	// DialContext replaces the default dialer (net.Dialer with
	// ConnectTimeout and 30s keep-alives). It is given an IP literal that
	// already passed the address check, never a name.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives retries and token fetches at debug level. Default: discard.
	Logger *slog.Logger
	// Metrics: NewMetrics(registerer). Default: unregistered collectors.
	Metrics *Metrics
}

// Client fetches manifests, blobs and referrers from upstream registries.
// It is safe for concurrent use.
type Client struct {
	opt       Options
	log       *slog.Logger
	m         *Metrics
	endpoints map[string]*endpoint // by lowercased Options.Endpoints key
	creds     map[string]Credential
	plain     *http.Client // system roots, for hosts without an endpoint entry
	guard     *guard       // every connection's address check

	mu    sync.Mutex
	slots map[string]chan struct{} // endpoint host → semaphore
	basic map[string]bool          // endpoint hosts that asked for Basic auth

	tokens  tokenCache
	flights singleflight.Group // token fetches in flight
	health  health             // per-host requests and last error (Health)

	now func() time.Time // time source of the token cache; tests move it
}

// endpoint is a resolved Endpoint.
type endpoint struct {
	base *url.URL // scheme://host[:port]
	http *http.Client
}

// New builds a client. It does no network I/O; it reads the endpoints'
// caFile PEM files (and the system root pool) once, here.
func New(opt Options) (*Client, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.ConnectTimeout <= 0 {
		opt.ConnectTimeout = DefaultConnectTimeout
	}
	opt.ConnectTimeout = min(opt.ConnectTimeout, opt.Timeout)
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = DefaultIdleTimeout
	}
	if opt.StallTimeout <= 0 {
		opt.StallTimeout = opt.Timeout
	}
	if opt.MaxConnsPerHost <= 0 {
		opt.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	switch {
	case opt.Retries == 0:
		opt.Retries = DefaultRetries
	case opt.Retries < 0:
		opt.Retries = 0
	}
	if opt.Backoff <= 0 {
		opt.Backoff = DefaultBackoff
	}
	if opt.UserAgent == "" {
		opt.UserAgent = DefaultUserAgent
	}
	c := &Client{
		opt:       opt,
		log:       opt.Logger,
		m:         opt.Metrics,
		endpoints: map[string]*endpoint{},
		creds:     map[string]Credential{},
		slots:     map[string]chan struct{}{},
		basic:     map[string]bool{},
		tokens:    tokenCache{m: map[tokenKey]cachedToken{}},
		now:       time.Now,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.m == nil {
		c.m = NewMetrics(nil)
	}
	for h, cr := range opt.Credentials {
		k := oci.CanonicalRegistryHost(h)
		if prev, dup := c.creds[k]; dup && prev != cr {
			return nil, fmt.Errorf("upstream credentials: two different credentials for %s (host names are case-insensitive; docker.io, index.docker.io and registry-1.docker.io are one host)", k)
		}
		c.creds[k] = cr
	}
	c.guard = &guard{resolver: opt.Resolver, dial: opt.DialContext, trusted: map[string]bool{}, allowed: opt.AllowedInternal}
	if c.guard.resolver == nil {
		c.guard.resolver = net.DefaultResolver
	}
	if c.guard.dial == nil {
		c.guard.dial = (&net.Dialer{Timeout: opt.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	system, err := x509.SystemCertPool()
	if err != nil {
		return nil, fmt.Errorf("load system root certificates: %w", err)
	}
	c.plain = c.httpClient(system)
	for host, e := range opt.Endpoints {
		var problems []string
		e.Validate(func(path, msg string) { problems = append(problems, path+" "+msg) })
		if !oci.ValidRegistryHost(host) {
			problems = append(problems, "the key must be a host[:port]")
		}
		if len(problems) > 0 {
			return nil, fmt.Errorf("upstream %q: %s", host, strings.Join(problems, "; "))
		}
		ep := &endpoint{http: c.plain}
		raw := e.URL
		if raw == "" {
			raw = "https://" + oci.RegistryEndpointHost(host)
		}
		u, _ := url.Parse(raw) // validated above
		ep.base = &url.URL{Scheme: u.Scheme, Host: strings.ToLower(u.Host)}
		c.guard.trust(ep.base)
		if e.CAFile != "" {
			pem, err := os.ReadFile(e.CAFile)
			if err != nil {
				return nil, fmt.Errorf("upstream %q: read caFile: %w", host, err)
			}
			pool := system.Clone()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("upstream %q: caFile %s holds no PEM certificate", host, e.CAFile)
			}
			ep.http = c.httpClient(pool)
		}
		c.endpoints[oci.CanonicalRegistryHost(host)] = ep
	}
	return c, nil
}

// httpClient builds a client trusting roots: every connection through the
// guard's address check, HTTP/2 allowed, no transparent decompression
// (bytes must hash to their digest), no proxy from the environment,
// redirects without Authorization to other hosts.
func (c *Client) httpClient(roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		DialContext:           c.guard.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   c.opt.ConnectTimeout,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
		IdleConnTimeout:       c.opt.IdleTimeout,
		MaxIdleConns:          4 * c.opt.MaxConnsPerHost,
		MaxIdleConnsPerHost:   c.opt.MaxConnsPerHost,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: tr, CheckRedirect: checkRedirect}
}

// checkRedirect follows up to 10 redirects (registries send blobs to
// storage with 307), never from https to http, and drops Authorization
// and Referer whenever the target's host[:port] differs from the first
// request's. (net/http would keep Authorization for the same host name
// on another port, and for subdomains.)
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return &redirectError{errors.New("stopped after 10 redirects")}
	}
	if via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return &redirectError{fmt.Errorf("refusing a redirect from https to %s", req.URL.Scheme)}
	}
	req.Header.Del("Referer")
	if req.URL.Host != via[0].URL.Host {
		req.Header.Del("Authorization")
	}
	return nil
}

// target is one resolved (host, repository).
type target struct {
	host string // as the caller named it, lowercased: labels and messages
	repo string // normalized
	ep   *endpoint
	cred *Credential
}

func (t target) endpointHost() string { return t.ep.base.Host }

// resolve validates host and repo and picks the endpoint and credentials.
func (c *Client) resolve(op, host, repo, ref string) (target, error) {
	h := strings.ToLower(host)
	nrepo := oci.NormalizeRepo(h, repo)
	bad := func(msg string) (target, error) {
		return target{}, &Error{Kind: ErrInvalidRequest, Op: op, Host: h, Repo: nrepo, Ref: ref, Err: errors.New(msg)}
	}
	if !oci.ValidRegistryHost(h) {
		return bad(fmt.Sprintf("invalid upstream host %q", host))
	}
	if _, err := oci.ParseName(nrepo); err != nil {
		return bad(err.Error())
	}
	// Endpoints and credentials are keyed by the canonical host, so
	// Docker Hub's three names find one entry.
	canon := oci.CanonicalRegistryHost(h)
	t := target{host: h, repo: nrepo, ep: c.endpoints[canon]}
	if cr, ok := c.creds[canon]; ok {
		t.cred = &cr
	}
	if t.ep == nil {
		t.ep = &endpoint{base: &url.URL{Scheme: "https", Host: oci.RegistryEndpointHost(canon)}, http: c.plain}
	}
	return t, nil
}

// acquire takes one of the endpoint's connection slots, waiting at most
// as long as ctx allows. The returned func gives it back (idempotent).
func (c *Client) acquire(ctx context.Context, t target) (func(), error) {
	c.mu.Lock()
	sem, ok := c.slots[t.endpointHost()]
	if !ok {
		sem = make(chan struct{}, c.opt.MaxConnsPerHost)
		c.slots[t.endpointHost()] = sem
	}
	c.mu.Unlock()
	select {
	case sem <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-sem }) }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}
