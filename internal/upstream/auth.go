package upstream

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Token lifetime rules (distribution token spec).
const (
	defaultTokenTTL = 60 * time.Second // when the realm sends no expires_in
	maxTokenTTL     = 24 * time.Hour
	maxTokenEarly   = 30 * time.Second // refresh at most this long before expiry
	maxTokenBody    = 1 << 20
	maxCachedTokens = 4096 // beyond this, expired tokens are pruned on insert
)

type tokenKey struct{ host, scope string } // endpoint host, "repository:x:pull"

type cachedToken struct {
	value   string
	expires time.Time
}

// tokenCache holds bearer tokens per (endpoint host, scope).
type tokenCache struct {
	mu sync.Mutex
	m  map[tokenKey]cachedToken
}

func (tc *tokenCache) get(k tokenKey, now time.Time) (string, bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	t, ok := tc.m[k]
	if !ok || !now.Before(t.expires) {
		return "", false
	}
	return t.value, true
}

func (tc *tokenCache) put(k tokenKey, value string, expires, now time.Time) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.m) >= maxCachedTokens {
		for k, t := range tc.m {
			if !now.Before(t.expires) {
				delete(tc.m, k)
			}
		}
	}
	tc.m[k] = cachedToken{value: value, expires: expires}
}

func (tc *tokenCache) drop(k tokenKey, value string) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if t, ok := tc.m[k]; ok && t.value == value {
		delete(tc.m, k)
	}
}

// authHeader is the Authorization to send before any challenge: a cached
// token for the scope, or Basic for an endpoint that asked for it before.
func (c *Client) authHeader(t target, scope string) string {
	if tok, ok := c.tokens.get(tokenKey{t.endpointHost(), scope}, c.now()); ok {
		return "Bearer " + tok
	}
	c.mu.Lock()
	basic := c.basic[t.endpointHost()]
	c.mu.Unlock()
	if basic && t.cred != nil {
		return basicAuth(*t.cred)
	}
	return ""
}

func basicAuth(cr Credential) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(cr.Username+":"+cr.Password))
}

// answer picks the Authorization for the retry after a 401: a fresh
// bearer token when the upstream offers a Bearer challenge, else Basic
// credentials when it offers Basic and the host has some.
func (c *Client) answer(ctx context.Context, rq *request, scope, sent string, challenges []Challenge, perr error) (string, error) {
	for _, ch := range challenges {
		if ch.Scheme == "bearer" && ch.Params["realm"] != "" {
			if tok, ok := strings.CutPrefix(sent, "Bearer "); ok {
				c.tokens.drop(tokenKey{rq.t.endpointHost(), scope}, tok)
			}
			tok, err := c.token(ctx, rq, ch, scope)
			if err != nil {
				return "", err
			}
			return "Bearer " + tok, nil
		}
	}
	for _, ch := range challenges {
		if ch.Scheme != "basic" {
			continue
		}
		e := rq.fail(ErrUnauthorized, "", nil)
		e.Status = http.StatusUnauthorized
		switch {
		case rq.t.cred == nil:
			e.Reason = reasonNoCredentials
			return "", e
		case strings.HasPrefix(sent, "Basic "):
			e.Err = errors.New("credentials rejected")
			return "", e
		}
		c.mu.Lock()
		c.basic[rq.t.endpointHost()] = true
		c.mu.Unlock()
		return basicAuth(*rq.t.cred), nil
	}
	e := rq.fail(ErrUnauthorized, reasonChallenge, errors.New("401 without a Bearer or Basic challenge"))
	if perr != nil {
		e.Err = perr
	}
	e.Status = http.StatusUnauthorized
	return "", e
}

// token returns a token for scope from the challenge's realm. Concurrent
// requests for the same endpoint and scope share one fetch, which runs
// detached from any one caller's cancellation (bounded by Timeout).
func (c *Client) token(ctx context.Context, rq *request, ch Challenge, scope string) (string, error) {
	key := tokenKey{rq.t.endpointHost(), scope}
	res := c.flights.DoChan(key.host+" "+key.scope, func() (any, error) {
		if tok, ok := c.tokens.get(key, c.now()); ok { // fetched while we queued
			return tok, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opt.Timeout)
		defer cancel()
		tok, ttl, err := c.fetchToken(fctx, rq, ch, scope)
		if err != nil {
			c.m.TokenFetches.WithLabelValues(rq.t.host, "error").Inc()
			return nil, err
		}
		c.m.TokenFetches.WithLabelValues(rq.t.host, "ok").Inc()
		c.log.Debug("fetched upstream token", logHost, rq.t.host, logScope, scope, logTTL, ttl)
		now := c.now()
		c.tokens.put(key, tok, now.Add(ttl), now)
		return tok, nil
	})
	select {
	case r := <-res:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", c.failure(ctx, rq, context.Cause(ctx))
	}
}

// fetchToken asks the realm for a token (distribution token spec: GET
// realm?service=…&scope=…, Basic credentials when the host has them) and
// returns it with how long to cache it.
func (c *Client) fetchToken(ctx context.Context, rq *request, ch Challenge, scope string) (string, time.Duration, error) {
	fail := func(kind error, reason string, err error) *Error {
		e := &Error{Kind: kind, Op: "fetch token", Host: rq.t.host, Repo: rq.t.repo, Reason: reason, Err: err}
		return e
	}
	realm, err := url.Parse(ch.Params["realm"])
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" || realm.User != nil {
		return "", 0, fail(ErrUnauthorized, reasonChallenge, errors.New("token realm is not an http(s) URL"))
	}
	if err := checkRealm(realm, rq.t.ep.base, rq.t.cred != nil); err != nil {
		return "", 0, fail(ErrUnauthorized, reasonChallenge, err)
	}
	q := realm.Query()
	if s := ch.Params["service"]; s != "" {
		q.Set("service", s)
	}
	scopes := strings.Fields(ch.Params["scope"])
	if len(scopes) == 0 {
		scopes = []string{scope}
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", 0, fail(ErrUnauthorized, reasonChallenge, err)
	}
	req.Header.Set("User-Agent", c.opt.UserAgent)
	if cr := rq.t.cred; cr != nil {
		req.SetBasicAuth(cr.Username, cr.Password)
	}
	start := time.Now()
	resp, err := rq.t.ep.http.Do(req)
	c.m.Duration.WithLabelValues(rq.t.host, "token").Observe(time.Since(start).Seconds())
	if err != nil {
		c.m.Requests.WithLabelValues(rq.t.host, "token", "error").Inc()
		e := c.failure(ctx, rq, err)
		e.Op, e.Ref = "fetch token", ""
		return "", 0, e
	}
	defer resp.Body.Close()
	c.m.Requests.WithLabelValues(rq.t.host, "token", strconv.Itoa(resp.StatusCode)).Inc()
	if resp.StatusCode != http.StatusOK {
		e := &request{op: "fetch token", kind: "token", t: rq.t}
		err := c.checkStatus(e, resp)
		if err == nil || errors.Is(err, ErrNotFound) { // 2xx other than 200, or no realm there
			err = fail(ErrBadResponse, reasonToken, errors.New(resp.Status))
		}
		return "", 0, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody+1))
	c.m.BytesReceived.WithLabelValues(rq.t.host, "token").Add(float64(len(body)))
	if err != nil {
		e := c.failure(ctx, rq, err)
		e.Op, e.Ref = "fetch token", ""
		return "", 0, e
	}
	if len(body) > maxTokenBody {
		return "", 0, fail(ErrBadResponse, reasonToken, fmt.Errorf("token response larger than %d bytes", maxTokenBody))
	}
	tok, expiresIn, err := parseTokenResponse(body)
	if err != nil {
		return "", 0, fail(ErrBadResponse, reasonToken, err)
	}
	ttl := defaultTokenTTL
	if expiresIn > 0 {
		ttl = time.Duration(min(expiresIn, int64(maxTokenTTL/time.Second))) * time.Second
	}
	return tok, ttl - min(ttl/10, maxTokenEarly), nil
}

// headerSafe reports whether s can be sent in a header value.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return len(s) <= 64<<10
}
