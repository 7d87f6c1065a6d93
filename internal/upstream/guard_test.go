package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/airlockdev/airlock/internal/netclass"
	"github.com/airlockdev/airlock/internal/oci"
)

// A configured endpoint on loopback may send the client elsewhere only
// to public addresses: a redirect or a token realm to another loopback
// port (a fake metadata service here) is refused before it is dialled.
func TestRedirectAndRealmToInternalAddressRefused(t *testing.T) {
	body, _ := testImage(t)
	meta, metaRec := serve(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"token":"from-metadata","AccessKeyId":"ASIAFAKE"}`)
	})
	tests := []struct {
		name string
		h    http.HandlerFunc // the configured endpoint
		do   func(c *Client) error
	}{
		{name: "blob redirect",
			h: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, meta.URL+"/latest/meta-data/", http.StatusTemporaryRedirect)
			},
			do: func(c *Client) error {
				rc, _, err := c.GetBlob(context.Background(), testHost, "app", oci.SHA256.FromBytes([]byte("x")), 0)
				if err == nil {
					rc.Close()
				}
				return err
			}},
		{name: "manifest redirect",
			h: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, meta.URL+"/latest/meta-data/", http.StatusFound)
			},
			do: func(c *Client) error {
				_, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
				return err
			}},
		{name: "token realm",
			h: func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer from-metadata" {
					w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="s"`, meta.URL+"/latest/meta-data/"))
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				manifestHandler(body, oci.MediaTypeImageManifest, true)(w, r)
			},
			do: func(c *Client) error {
				_, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
				return err
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := serve(t, tt.h)
			before := len(metaRec.all())
			c := newTestClient(t, srv.URL, func(o *Options) { o.Credentials = map[string]Credential{testHost: {"ci", "pw"}} })
			err := tt.do(c)
			if !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), "127.0.0.1") {
				t.Errorf("%s to %s = %v, want ErrBadResponse naming the refused address", tt.name, meta.URL, err)
			}
			if n := len(metaRec.all()) - before; n != 0 {
				t.Errorf("internal target saw %d requests, want 0", n)
			}
		})
	}
}

// A token realm on plain http is refused for an https endpoint, with or
// without credentials: the token would travel in the clear and the
// registry's TLS would protect nothing.
func TestPlainHTTPRealmOfHTTPSEndpointRefused(t *testing.T) {
	tok, tokRec := serve(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"token":"t"}`) })
	body, _ := testImage(t)
	reg := newTLSServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q`, tok.URL+"/token"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		manifestHandler(body, oci.MediaTypeImageManifest, true)(w, r)
	})
	c := newTestClient(t, reg.URL, func(o *Options) { o.Endpoints[testHost] = Endpoint{URL: reg.URL, CAFile: writeCA(t, reg)} })
	_, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrUnauthorized) || e.Reason != reasonChallenge || !strings.Contains(err.Error(), "plain-http") {
		t.Errorf("GetManifest with an http realm for an https registry = %v, want ErrUnauthorized %q about plain-http", err, reasonChallenge)
	}
	if n := len(tokRec.all()); n != 0 {
		t.Errorf("plain-http realm saw %d requests, want 0", n)
	}
}

// Only the distribution spec's lower-case token and access_token fields
// are tokens; encoding/json alone would take "Token" (the shape of cloud
// metadata credentials) as one and send it upstream.
func TestTokenResponseFieldNamesExact(t *testing.T) {
	body, _ := testImage(t)
	tests := []struct {
		name, resp string
		ok         bool
	}{
		{name: "token", resp: `{"token":"good","expires_in":300}`, ok: true},
		{name: "access_token", resp: `{"access_token":"good"}`, ok: true},
		{name: "Token", resp: `{"Code":"Success","Token":"good","Expiration":"2030"}`},
		{name: "TOKEN", resp: `{"TOKEN":"good"}`},
		{name: "Access_Token", resp: `{"Access_Token":"good"}`},
		{name: "no token", resp: `{"expires_in":300}`},
		{name: "token not a string", resp: `{"token":42}`},
		{name: "not an object", resp: `["good"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sent []string
			srv, rec := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/token" {
					fmt.Fprint(w, tt.resp)
					return
				}
				if a := r.Header.Get("Authorization"); a != "Bearer good" {
					w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token"`, r.Host))
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				manifestHandler(body, oci.MediaTypeImageManifest, true)(w, r)
			})
			c := newTestClient(t, srv.URL, nil)
			_, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
			for _, s := range rec.all() {
				if s.Path != "/token" {
					sent = append(sent, s.Auth)
				}
			}
			if tt.ok {
				if err != nil {
					t.Errorf("GetManifest with token response %s = %v, want success", tt.resp, err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrBadResponse) || e.Reason != reasonToken {
				t.Errorf("GetManifest with token response %s = %v, want ErrBadResponse %q", tt.resp, err, reasonToken)
			}
			for _, a := range sent {
				if a != "" {
					t.Errorf("registry received Authorization %q from token response %s, want none", a, tt.resp)
				}
			}
		})
	}
}

// mapResolver answers from a map; a name not in it fails like NXDOMAIN.
// Tests use it so that no name is ever looked up in the real DNS.
type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := m[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// natDialer is a test's raw dialer: it records every address it is
// asked for, dials loopback addresses, maps the addresses in nat to
// loopback listeners (a stand-in for a public host: those addresses never
// reach the wire) and refuses everything else without dialling.
type natDialer struct {
	nat  map[string]string // ip:port → 127.0.0.1:port
	mu   sync.Mutex
	seen []string
}

func (d *natDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.seen = append(d.seen, addr)
	d.mu.Unlock()
	if to, ok := d.nat[addr]; ok {
		addr = to
	}
	return loopbackDial(ctx, network, addr)
}

func (d *natDialer) asked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.seen...)
}

func hostPort(u string) string {
	return strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
}

// The check is on the address the name resolves to, and the raw dialer is
// given that checked IP literal, never the name (so a second lookup that
// answers differently cannot happen).
func TestDialChecksResolvedAddress(t *testing.T) {
	blob := []byte("layer")
	d := oci.SHA256.FromBytes(blob)
	storage, storageRec := serve(t, blobServer(blob, false))
	_, port, _ := net.SplitHostPort(hostPort(storage.URL))
	tests := []struct {
		name    string
		answers []string
		allowed []string
		refused bool
		dialled []string
	}{
		{name: "name of a loopback address", answers: []string{"127.0.0.1"}, refused: true},
		{name: "name of the metadata address", answers: []string{"169.254.169.254"}, refused: true},
		{name: "allowed range", answers: []string{"127.0.0.1"}, allowed: []string{"127.0.0.1/32"}, dialled: []string{"127.0.0.1:" + port}},
		{name: "refused answer skipped", answers: []string{"169.254.169.254", "127.0.0.1"}, allowed: []string{"127.0.0.0/8"}, dialled: []string{"127.0.0.1:" + port}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://cdn.test:"+port+r.URL.Path, http.StatusTemporaryRedirect)
			})
			var answers []netip.Addr
			for _, a := range tt.answers {
				answers = append(answers, netip.MustParseAddr(a))
			}
			nd := &natDialer{}
			before := len(storageRec.all())
			c := newTestClient(t, srv.URL, func(o *Options) {
				o.Resolver = mapResolver{"cdn.test": answers}
				o.DialContext = nd.dial
				o.Retries = -1
				for _, p := range tt.allowed {
					o.AllowedInternal = append(o.AllowedInternal, netip.MustParsePrefix(p))
				}
			})
			rc, _, err := c.GetBlob(context.Background(), testHost, "app", d, 0)
			if err == nil {
				rc.Close()
			}
			var ae *AddrError
			if refused := errors.As(err, &ae); refused != tt.refused {
				t.Errorf("GetBlob via cdn.test → %v = %v, want refused %v", tt.answers, err, tt.refused)
			}
			want := append([]string{hostPort(srv.URL)}, tt.dialled...)
			if diff := cmp.Diff(want, nd.asked()); diff != "" {
				t.Errorf("raw dialer asked for (-want +got):\n%s", diff)
			}
			if got, want := len(storageRec.all())-before, len(tt.dialled); got != want {
				t.Errorf("storage saw %d requests, want %d", got, want)
			}
		})
	}
}

// mcr.microsoft.com sends blob GETs to a CDN host over https: a public
// address is followed, without the registry's credentials.
func TestRedirectToPublicHostFollowed(t *testing.T) {
	blob := []byte("layer on a cdn")
	d := oci.SHA256.FromBytes(blob)
	var cdnAuth atomic.Value
	cdnAuth.Store("")
	cdn := newTLSServer(t, func(w http.ResponseWriter, r *http.Request) {
		cdnAuth.Store(r.Header.Get("Authorization"))
		blobServer(blob, false)(w, r)
	})
	_, cdnPort, _ := net.SplitHostPort(hostPort(cdn.URL))
	reg := newTLSServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="r"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		// httptest's certificate names example.com; the resolver below
		// answers it, so it is never looked up.
		http.Redirect(w, r, "https://example.com:"+cdnPort+"/blobs/x", http.StatusTemporaryRedirect)
	})
	// 8.8.8.8 is only a public label here: the test dialer maps it to the
	// loopback CDN and nothing is sent to it.
	public := net.JoinHostPort("8.8.8.8", cdnPort)
	nd := &natDialer{nat: map[string]string{public: hostPort(cdn.URL)}}
	c := newTestClient(t, reg.URL, func(o *Options) {
		o.Endpoints[testHost] = Endpoint{URL: reg.URL, CAFile: writeCA(t, reg)}
		o.Credentials = map[string]Credential{testHost: {"ci", "pw"}}
		o.Resolver = mapResolver{"example.com": {netip.MustParseAddr("8.8.8.8")}}
		o.DialContext = nd.dial
	})
	rc, _, err := c.GetBlob(context.Background(), testHost, "app", d, 0)
	if err != nil {
		t.Fatalf("GetBlob via a public CDN = %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, blob) {
		t.Errorf("GetBlob via a public CDN read %q, %v, want %q", got, err, blob)
	}
	if a := cdnAuth.Load(); a != "" {
		t.Errorf("CDN received Authorization %q, want none", a)
	}
	if asked := nd.asked(); len(asked) != 2 || asked[1] != public {
		t.Errorf("raw dialer asked for %v, want the endpoint then %s", asked, public)
	}
}

// A redirect target that answers 401 gets no credentials: its challenge
// is not answered, so its realm (any URL it likes) sees nothing.
func TestChallengeFromRedirectTargetNotAnswered(t *testing.T) {
	realm, realmRec := serve(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"token":"t"}`) })
	storage, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q`, realm.URL+"/token"))
		w.WriteHeader(http.StatusUnauthorized)
	})
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, storage.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	c := newTestClient(t, srv.URL, func(o *Options) {
		o.Credentials = map[string]Credential{testHost: {"ci", "pw"}}
		o.AllowedInternal = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} // storage and realm stand for public hosts
	})
	_, _, err := c.GetBlob(context.Background(), testHost, "app", oci.SHA256.FromBytes([]byte("x")), 0)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrUnauthorized) || e.Reason != reasonChallenge {
		t.Errorf("GetBlob with a 401 from the redirect target = %v, want ErrUnauthorized %q", err, reasonChallenge)
	}
	if n := len(realmRec.all()); n != 0 {
		t.Errorf("the redirect target's realm saw %d requests, want 0", n)
	}
}

// For a plain-http endpoint the challenge itself travels in the clear:
// credentials go only to a realm on the endpoint's own host.
func TestCredentialsOnlyToRealmOnPlainHTTPEndpointsHost(t *testing.T) {
	body, _ := testImage(t)
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	other := httptest.NewUnstartedServer(nil)
	other.Listener.Close()
	other.Listener = ln
	otherRec := &recorder{h: func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"token":"t"}`) }}
	other.Config.Handler = otherRec
	other.Start()
	t.Cleanup(other.Close)
	samePort, _ := serve(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"token":"t"}`) })
	tests := []struct {
		name  string
		realm func(self string) string
		ok    bool
	}{
		{name: "another host", realm: func(string) string { return other.URL + "/token" }},
		{name: "same host, other port", realm: func(string) string { return samePort.URL + "/token" }, ok: true},
		{name: "same host and port", realm: func(self string) string { return self + "/token" }, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var srv *httptest.Server
			srv, _ = serve(t, func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == "/token":
					fmt.Fprint(w, `{"token":"t"}`)
				case r.Header.Get("Authorization") != "Bearer t":
					w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q`, tt.realm(srv.URL)))
					w.WriteHeader(http.StatusUnauthorized)
				default:
					manifestHandler(body, oci.MediaTypeImageManifest, true)(w, r)
				}
			})
			before := len(otherRec.all())
			c := newTestClient(t, srv.URL, func(o *Options) {
				o.Credentials = map[string]Credential{testHost: {"ci", "pw"}}
				o.AllowedInternal = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			})
			_, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
			if tt.ok {
				if err != nil {
					t.Errorf("GetManifest = %v, want success", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrUnauthorized) || e.Reason != reasonChallenge {
				t.Errorf("GetManifest with realm %s = %v, want ErrUnauthorized %q", tt.realm(srv.URL), err, reasonChallenge)
			}
			if n := len(otherRec.all()) - before; n != 0 {
				t.Errorf("realm on another host saw %d requests, want 0", n)
			}
		})
	}
}

// The client's address check decides as netclass.Allowed does, for a
// sample of every range of the one classification, with allowed ranges
// opening some: the egress dialer and the DNS rebinding filter have the
// same test against the same samples, which pins the three to one table.
// Each sample is the target of a redirect; an allowed one reaches the raw
// dialer (which dials only loopback), a refused one does not.
func TestDialGuardAgreesWithNetclass(t *testing.T) {
	allowed := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00:1::/32")}
	samples := append(netclass.Samples(), netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("fd00:1::1"))
	var target atomic.Value
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+target.Load().(string)+"/x", http.StatusTemporaryRedirect)
	})
	nd := &natDialer{}
	c := newTestClient(t, srv.URL, func(o *Options) {
		o.DialContext = nd.dial
		o.AllowedInternal = allowed
		o.Retries = -1
	})
	for _, a := range samples {
		// Port 9: no loopback sample can reach a server.
		dst := netip.AddrPortFrom(a, 9).String()
		target.Store(dst)
		before := len(nd.asked())
		rc, _, err := c.GetBlob(context.Background(), testHost, "app", oci.SHA256.FromBytes([]byte("x")), 0)
		if err == nil {
			rc.Close()
		}
		var ae *AddrError
		refused := errors.As(err, &ae)
		dialled := false
		for _, s := range nd.asked()[before:] {
			dialled = dialled || s == netip.AddrPortFrom(a.Unmap(), 9).String()
		}
		class, ok := netclass.Allowed(a, allowed)
		if refused == ok || dialled != ok {
			t.Errorf("redirect to %s (%s): refused %v, dialled %v, want allowed %v (netclass.Allowed); err %v", dst, class, refused, dialled, ok, err)
		}
	}
}

func TestParseTokenResponse(t *testing.T) {
	tests := []struct {
		body    string
		tok     string
		expires int64
		err     bool
	}{
		{body: `{"token":"a","expires_in":300}`, tok: "a", expires: 300},
		{body: `{"token":"","access_token":"b"}`, tok: "b"},
		{body: `{"token":"a","access_token":"b"}`, tok: "a"},
		{body: `{"token":"a","expires_in":null}`, tok: "a"},
		{body: `{"token":"a","Token":"b"}`, tok: "a"},
		{body: `{"Token":"b"}`, err: true},
		{body: `{"access_Token":"b"}`, err: true},
		{body: `{"token":"a","expires_in":1.5}`, err: true},
		{body: `{"token":"a","expires_in":"300"}`, err: true},
		{body: `{"token":"a\nb"}`, err: true},
		{body: `null`, err: true},
		{body: `"token"`, err: true},
		{body: ``, err: true},
	}
	for _, tt := range tests {
		tok, exp, err := parseTokenResponse([]byte(tt.body))
		if (err != nil) != tt.err || tok != tt.tok || exp != tt.expires {
			t.Errorf("parseTokenResponse(%s) = %q, %d, %v, want %q, %d, error %v", tt.body, tok, exp, err, tt.tok, tt.expires, tt.err)
		}
	}
}
