package upstream

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

// tokenFixture is a registry that demands bearer tokens and the token
// server that issues them.
type tokenFixture struct {
	reg, tok       *httptest.Server
	regRec, tokRec *recorder
	body           []byte

	mu        sync.Mutex
	issued    map[string]string // token → scope
	n         int
	expiresIn int    // 0: field omitted
	user      string // when set, the token server demands Basic user:pass
	pass      string
	rejectAll bool // the registry refuses every token
	challenge func(realm, scope string) string
	tokDelay  time.Duration
}

func newTokenFixture(t *testing.T, mod func(*tokenFixture)) *tokenFixture {
	f := &tokenFixture{issued: map[string]string{}}
	f.body, _ = testImage(t)
	f.challenge = func(realm, scope string) string {
		return fmt.Sprintf(`Bearer realm=%q,service="test-registry",scope=%q`, realm, scope)
	}
	if mod != nil {
		mod(f)
	}
	f.tok, f.tokRec = serve(t, f.serveToken)
	f.reg, f.regRec = serve(t, f.serveRegistry)
	return f
}

func (f *tokenFixture) serveToken(w http.ResponseWriter, r *http.Request) {
	time.Sleep(f.tokDelay)
	if f.user != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != f.user || p != f.pass {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	if r.URL.Query().Get("service") != "test-registry" {
		http.Error(w, "bad service", http.StatusBadRequest)
		return
	}
	scope := strings.Join(r.URL.Query()["scope"], " ")
	f.mu.Lock()
	f.n++
	tok := fmt.Sprintf("tok%d", f.n)
	f.issued[tok] = scope
	f.mu.Unlock()
	resp := map[string]any{"token": tok}
	if f.expiresIn > 0 {
		resp["expires_in"] = f.expiresIn
	}
	json.NewEncoder(w).Encode(resp)
}

func (f *tokenFixture) serveRegistry(w http.ResponseWriter, r *http.Request) {
	repo, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/manifests/")
	scope := "repository:" + repo + ":pull"
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	ok := f.issued[tok] == scope && !f.rejectAll
	f.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", f.challenge(f.tok.URL+"/token", scope))
		ociError(w, http.StatusUnauthorized, oci.CodeUnauthorized)
		return
	}
	manifestHandler(f.body, oci.MediaTypeImageManifest, true)(w, r)
}

// client is a Client for the fixture's registry. The token server stands
// for a public realm on another host (auth.docker.io for Docker Hub): it
// is on loopback, so its address is allowed as internal.
func (f *tokenFixture) client(t *testing.T, mod func(*Options)) *Client {
	return newTestClient(t, f.reg.URL, func(o *Options) {
		o.AllowedInternal = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		if mod != nil {
			mod(o)
		}
	})
}

func TestBearerTokenFlow(t *testing.T) {
	f := newTokenFixture(t, nil)
	c := f.client(t, nil)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := c.GetManifest(ctx, testHost, "team/app", oci.Reference{Tag: "v1"}); err != nil {
			t.Fatalf("GetManifest #%d = %v", i, err)
		}
	}
	if _, err := c.GetManifest(ctx, testHost, "team/other", oci.Reference{Tag: "v1"}); err != nil {
		t.Fatalf("GetManifest(other repo) = %v", err)
	}
	toks := f.tokRec.all()
	if len(toks) != 2 {
		t.Fatalf("token fetches = %d, want 2 (one per scope): %+v", len(toks), toks)
	}
	if toks[0].Query != "scope=repository%3Ateam%2Fapp%3Apull&service=test-registry" || toks[0].Auth != "" {
		t.Errorf("first token request = %+v, want anonymous with the challenge's scope and service", toks[0])
	}
	// team/app: 401, then 3 with the token; team/other: 401, 1 with the token.
	if got := len(f.regRec.all()); got != 6 {
		t.Errorf("registry requests = %d, want 6", got)
	}
	if got := counter(t, c.m.TokenFetches, testHost, "ok"); got != 2 {
		t.Errorf("token_fetches_total{ok} = %v, want 2", got)
	}
}

func TestBearerTokenWithCredentials(t *testing.T) {
	f := newTokenFixture(t, func(f *tokenFixture) { f.user, f.pass = "ci", "s3cret" })
	t.Run("with credentials", func(t *testing.T) {
		c := f.client(t, func(o *Options) {
			o.Credentials = map[string]Credential{testHost: {Username: "ci", Password: "s3cret"}}
		})
		if _, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"}); err != nil {
			t.Fatalf("GetManifest = %v", err)
		}
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte("ci:s3cret"))
		if got := f.tokRec.all()[0].Auth; got != want {
			t.Errorf("token request Authorization = %q, want %q", got, want)
		}
	})
	t.Run("anonymous is refused", func(t *testing.T) {
		c := f.client(t, nil)
		_, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
		if !errors.Is(err, ErrUnauthorized) {
			t.Errorf("GetManifest = %v, want ErrUnauthorized", err)
		}
	})
}

func TestTokenExpiry(t *testing.T) {
	tests := []struct {
		name       string
		expiresIn  int
		stillValid time.Duration // token reused this long after the fetch
		refetched  time.Duration // and fetched again by then
	}{
		{name: "default 60s", expiresIn: 0, stillValid: 50 * time.Second, refetched: 55 * time.Second},
		{name: "expires_in 600", expiresIn: 600, stillValid: 560 * time.Second, refetched: 571 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTokenFixture(t, func(f *tokenFixture) { f.expiresIn = tt.expiresIn })
			c := f.client(t, nil)
			base := time.Now()
			var now atomic.Int64
			now.Store(base.UnixNano())
			c.now = func() time.Time { return time.Unix(0, now.Load()) }
			get := func() {
				t.Helper()
				if _, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"}); err != nil {
					t.Fatal(err)
				}
			}
			get()
			now.Store(base.Add(tt.stillValid).UnixNano())
			get()
			if n := len(f.tokRec.all()); n != 1 {
				t.Errorf("token fetches after %s = %d, want 1", tt.stillValid, n)
			}
			now.Store(base.Add(tt.refetched).UnixNano())
			get()
			if n := len(f.tokRec.all()); n != 2 {
				t.Errorf("token fetches after %s = %d, want 2", tt.refetched, n)
			}
		})
	}
}

func TestTokenRejectedDoesNotLoop(t *testing.T) {
	f := newTokenFixture(t, func(f *tokenFixture) { f.rejectAll = true })
	c := f.client(t, func(o *Options) { o.Retries = 5 })
	_, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("GetManifest = %v, want ErrUnauthorized", err)
	}
	if n := len(f.regRec.all()); n != 2 {
		t.Errorf("registry requests = %d, want 2 (the request and its one retry with a token)", n)
	}
}

func TestConcurrentTokenFetchesCoalesce(t *testing.T) {
	f := newTokenFixture(t, func(f *tokenFixture) { f.tokDelay = 50 * time.Millisecond })
	c := f.client(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.tokRec.all()); n != 1 {
		t.Errorf("token fetches for 20 concurrent requests = %d, want 1", n)
	}
}

func TestSeveralChallengesPreferBearer(t *testing.T) {
	f := newTokenFixture(t, func(f *tokenFixture) {
		f.challenge = func(realm, scope string) string {
			return fmt.Sprintf(`Basic realm="registry", BEARER Realm=%q, Service="test-registry"`, realm)
		}
	})
	c := f.client(t, nil)
	if _, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"}); err != nil {
		t.Fatalf("GetManifest = %v", err)
	}
	// Without a scope in the challenge the client asks for its own.
	if got := f.tokRec.all()[0].Query; got != "scope=repository%3Aapp%3Apull&service=test-registry" {
		t.Errorf("token query = %q", got)
	}
}

func TestBasicChallenge(t *testing.T) {
	body, _ := testImage(t)
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("ci:pw"))
	srv, rec := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != want {
			w.Header().Set("WWW-Authenticate", `basic realm="Registry Realm"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		manifestHandler(body, oci.MediaTypeImageManifest, true)(w, r)
	})
	tests := []struct {
		name     string
		cred     *Credential
		wantErr  error
		requests int // for two GetManifest calls
	}{
		// 401, retry with Basic, then Basic sent up front.
		{name: "right credentials", cred: &Credential{"ci", "pw"}, requests: 3},
		// 401, retry with Basic, 401; then Basic up front, 401, and no second try.
		{name: "wrong credentials", cred: &Credential{"ci", "nope"}, wantErr: ErrUnauthorized, requests: 3},
		{name: "no credentials", wantErr: ErrUnauthorized, requests: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(rec.all())
			c := newTestClient(t, srv.URL, func(o *Options) {
				if tt.cred != nil {
					o.Credentials = map[string]Credential{testHost: *tt.cred}
				}
			})
			for i := 0; i < 2; i++ {
				_, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
				if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("GetManifest #%d = %v, want %v", i, err, tt.wantErr)
				}
			}
			if got := len(rec.all()) - before; got != tt.requests {
				t.Errorf("requests = %d, want %d", got, tt.requests)
			}
		})
	}
}

func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLSWithCAFile(t *testing.T) {
	body, _ := testImage(t)
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		manifestHandler(body, oci.MediaTypeImageManifest, true)(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)

	t.Run("system roots only", func(t *testing.T) {
		c := newTestClient(t, srv.URL, nil)
		_, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("GetManifest = %v, want ErrUnavailable", err)
		}
		var e *Error
		if errors.As(err, &e); e.Reason != reasonTLS {
			t.Errorf("reason = %q, want %q", e.Reason, reasonTLS)
		}
	})
	t.Run("caFile", func(t *testing.T) {
		ca := writeCA(t, srv)
		c := newTestClient(t, srv.URL, func(o *Options) { o.Endpoints[testHost] = Endpoint{URL: srv.URL, CAFile: ca} })
		if _, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"}); err != nil {
			t.Fatalf("GetManifest = %v", err)
		}
		if got := proto.Load(); got != "HTTP/2.0" {
			t.Errorf("protocol = %v, want HTTP/2.0", got)
		}
	})
	t.Run("credentials never go to a plain-http realm of an https registry", func(t *testing.T) {
		tok, tokRec := serve(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"token":"t"}`) })
		reg := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q`, tok.URL))
			w.WriteHeader(http.StatusUnauthorized)
		}))
		t.Cleanup(reg.Close)
		c := newTestClient(t, reg.URL, func(o *Options) {
			o.Endpoints[testHost] = Endpoint{URL: reg.URL, CAFile: writeCA(t, reg)}
			o.Credentials = map[string]Credential{testHost: {"ci", "pw"}}
		})
		_, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
		if !errors.Is(err, ErrUnauthorized) {
			t.Errorf("GetManifest = %v, want ErrUnauthorized", err)
		}
		if n := len(tokRec.all()); n != 0 {
			t.Errorf("token server saw %d requests, want 0", n)
		}
	})
	t.Run("caFile without certificates", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "empty.pem")
		os.WriteFile(p, []byte("not pem"), 0o600)
		if _, err := New(Options{Endpoints: map[string]Endpoint{testHost: {URL: srv.URL, CAFile: p}}}); err == nil {
			t.Error("New with a caFile holding no certificate = nil error")
		}
	})
}
