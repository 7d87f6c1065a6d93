package upstream

import (
	"context"
	"crypto/tls"
	"encoding/json"
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

// Log keys.
const (
	logHost    = "upstream_host"
	logOp      = "op"
	logRepo    = "repository"
	logAttempt = "attempt"
	logWait    = "wait"
	logErr     = "err"
	logScope   = "scope"
	logTTL     = "ttl"
)

// request describes one logical operation: the HTTP request to send (and
// repeat) and how to read its answer.
type request struct {
	op     string // for errors: "get manifest"
	kind   string // metrics label: manifest, blob, referrers
	method string
	t      target
	ref    string     // tag or digest, for errors
	path   string     // below /v2/
	query  url.Values // may be nil
	header http.Header
	// consume, when set, reads a 2xx response inside the attempt, under
	// Timeout and holding the connection slot; a retryable error it
	// returns makes the whole exchange repeat. exchange then returns a nil
	// call.
	consume func(cl *call) error
}

func (rq *request) fail(kind error, reason string, err error) *Error {
	return &Error{Kind: kind, Op: rq.op, Host: rq.t.host, Repo: rq.t.repo, Ref: rq.ref, Reason: reason, Err: err}
}

// call is a response whose body is still open, with what must be released
// once it is read: the attempt's context, its deadline timer and the slot.
type call struct {
	resp    *http.Response
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer // fires at the operation's deadline
	release func()
	once    sync.Once
}

var errClosed = errors.New("response closed")

func (cl *call) close() {
	cl.once.Do(func() {
		cl.resp.Body.Close()
		cl.timer.Stop()
		cl.cancel(errClosed)
		cl.release()
	})
}

// timeoutError is the cause set when an operation's Timeout expires.
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string        { return "no answer within " + e.after.String() }
func (e *timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// stallError is the cause set when a blob body stops delivering bytes.
type stallError struct{ after time.Duration }

func (e *stallError) Error() string        { return "no bytes for " + e.after.String() }
func (e *stallError) Is(target error) bool { return target == context.DeadlineExceeded }

// redirectError marks a redirect checkRedirect refused.
type redirectError struct{ err error }

func (e *redirectError) Error() string { return e.err.Error() }
func (e *redirectError) Unwrap() error { return e.err }

// exchange runs rq until it gets a final answer: a 2xx response (returned
// open, or consumed), or an error that is not worth retrying, or the
// retries or the Timeout run out. The caller must close a returned call.
func (c *Client) exchange(ctx context.Context, rq *request) (_ *call, err error) {
	defer func() { c.health.record(rq.t.host, err, c.now()) }()
	deadline := time.Now().Add(c.opt.Timeout)
	retries := c.opt.Retries
	if ctx.Value(noRetryKey{}) != nil {
		retries = 0
	}
	var prev *Error // the last attempt's error, when it was retried
	for attempt := 0; ; attempt++ {
		cl, err := c.attempt(ctx, rq, deadline)
		if err == nil {
			return cl, nil
		}
		var e *Error
		if !errors.As(err, &e) {
			e = rq.fail(ErrUnavailable, "", err)
		}
		cp := *e // the error may be shared (token fetches are coalesced)
		e = &cp
		var te *timeoutError
		if prev != nil && errors.As(e.Err, &te) {
			// The Timeout cut a retry short: what the upstream last said
			// (connection refused, 503, …) is the reason, not the clock.
			last := *prev
			last.Err = fmt.Errorf("%w; attempt %d: %s", prev.Err, attempt+1, te.Error())
			last.retry = false
			return nil, &last
		}
		if attempt > 0 && e.retry {
			e.Err = fmt.Errorf("after %d attempts: %w", attempt+1, e.Err)
		}
		if !e.retry || attempt >= retries || ctx.Err() != nil {
			return nil, e
		}
		wait := c.backoff(attempt)
		if e.RetryAfter > wait {
			wait = e.RetryAfter
		}
		if left := time.Until(deadline); wait >= left {
			if e.RetryAfter > 0 {
				e.Reason = fmt.Sprintf("asked to retry after %s, beyond the %s timeout", e.RetryAfter.Round(time.Second), c.opt.Timeout)
			}
			return nil, e
		}
		prev = e
		c.m.Retries.WithLabelValues(rq.t.host, rq.kind).Inc()
		c.log.Debug("retrying upstream request", logHost, rq.t.host, logOp, rq.op, logRepo, rq.t.repo,
			logAttempt, attempt+1, logWait, wait, logErr, e)
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, rq.fail(ErrUnavailable, "cancelled", context.Cause(ctx))
		}
	}
}

// attempt sends rq once (twice when it has to answer an auth challenge).
func (c *Client) attempt(ctx context.Context, rq *request, deadline time.Time) (*call, error) {
	actx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(time.Until(deadline), func() { cancel(&timeoutError{c.opt.Timeout}) })
	abort := func(err error) (*call, error) {
		timer.Stop()
		cancel(errClosed)
		return nil, err
	}
	release, err := c.acquire(actx, rq.t)
	if err != nil {
		e := c.failure(actx, rq, err)
		e.Err = fmt.Errorf("waiting for one of %d connection slots: %w", c.opt.MaxConnsPerHost, e.Err)
		return abort(e)
	}
	resp, err := c.send(actx, rq)
	if err != nil {
		release()
		return abort(err)
	}
	cl := &call{resp: resp, ctx: actx, cancel: cancel, timer: timer, release: release}
	if err := c.checkStatus(rq, resp); err != nil {
		cl.close()
		return nil, err
	}
	if rq.consume != nil {
		err := rq.consume(cl)
		cl.close()
		return nil, err
	}
	return cl, nil
}

// send does one HTTP exchange and, on 401, answers the challenge and
// sends again once.
func (c *Client) send(ctx context.Context, rq *request) (*http.Response, error) {
	scope := "repository:" + rq.t.repo + ":pull"
	auth := c.authHeader(rq.t, scope)
	resp, err := c.roundTrip(ctx, rq, auth)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if from := resp.Request.URL; from.Host != rq.t.ep.base.Host || from.Scheme != rq.t.ep.base.Scheme {
		// A redirect target (a CDN, storage) that asks for credentials
		// gets none: its challenge could name any realm, and credentials
		// go only where the endpoint's own challenge sends them.
		discard(resp)
		e := rq.fail(ErrUnauthorized, reasonChallenge, fmt.Errorf("401 from redirect target %s; only the endpoint's own challenges are answered", from.Host))
		e.Status = http.StatusUnauthorized
		return nil, e
	}
	challenges, perr := ParseChallenges(resp.Header.Values("Www-Authenticate")...)
	discard(resp)
	auth, err = c.answer(ctx, rq, scope, auth, challenges, perr)
	if err != nil {
		return nil, err
	}
	return c.roundTrip(ctx, rq, auth)
}

// roundTrip sends rq once with the given Authorization value.
func (c *Client) roundTrip(ctx context.Context, rq *request, auth string) (*http.Response, error) {
	u := *rq.t.ep.base
	u.Path = "/v2/" + rq.path
	u.RawQuery = rq.query.Encode()
	req, err := http.NewRequestWithContext(ctx, rq.method, u.String(), nil)
	if err != nil {
		return nil, rq.fail(ErrInvalidRequest, "", err)
	}
	for k, v := range rq.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", c.opt.UserAgent)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	start := time.Now()
	resp, err := rq.t.ep.http.Do(req)
	c.m.Duration.WithLabelValues(rq.t.host, rq.kind).Observe(time.Since(start).Seconds())
	if err != nil {
		c.m.Requests.WithLabelValues(rq.t.host, rq.kind, "error").Inc()
		return nil, c.failure(ctx, rq, err)
	}
	c.m.Requests.WithLabelValues(rq.t.host, rq.kind, strconv.Itoa(resp.StatusCode)).Inc()
	return resp, nil
}

// failure classifies an error of the transport, of a slot wait or of a
// body read, made under ctx.
func (c *Client) failure(ctx context.Context, rq *request, err error) *Error {
	e := rq.fail(ErrUnavailable, reasonConnect, err)
	var te *timeoutError
	var se *stallError
	var re *redirectError
	var ae *AddrError
	var cve *tls.CertificateVerificationError
	switch cause := context.Cause(ctx); {
	case errors.As(cause, &te):
		e.Reason, e.Err = te.Error(), cause
	case errors.As(cause, &se):
		e.Reason, e.Err = reasonStalled, cause
	case errors.Is(cause, context.DeadlineExceeded):
		e.Reason, e.Err = "timed out", cause
	case cause != nil && cause != errClosed:
		e.Reason, e.Err = "cancelled", cause
	case errors.As(err, &re):
		e.Kind, e.Reason = ErrBadResponse, reasonRedirect
	case errors.As(err, &ae):
		e.Kind, e.Reason = ErrBadResponse, reasonAddress // the same answer every time
	case errors.As(err, &cve):
		e.Reason = reasonTLS // retrying will not make the certificate trusted
	default:
		e.retry = true
	}
	return e
}

// checkStatus turns a non-2xx response into an error, reading (a bounded
// part of) the OCI error body for the log.
func (c *Client) checkStatus(rq *request, resp *http.Response) error {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	e := rq.fail(ErrBadResponse, reasonStatus, errors.New(resp.Status+errorDetail(resp)))
	e.Status = code
	switch {
	case code == http.StatusNotFound:
		e.Kind, e.Reason = ErrNotFound, ""
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		e.Kind, e.Reason = ErrUnauthorized, ""
	case code == http.StatusTooManyRequests:
		e.Kind, e.Reason, e.retry = ErrRateLimited, "", true
		e.RetryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	case code >= 500 && code != http.StatusNotImplemented && code != http.StatusHTTPVersionNotSupported:
		e.Kind, e.Reason, e.retry = ErrUnavailable, reasonServer, true
	}
	return e
}

// errorDetail summarises an OCI error body (": CODE: message"), for logs.
func errorDetail(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	var doc struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &doc) != nil || len(doc.Errors) == 0 {
		return ""
	}
	s := ": " + doc.Errors[0].Code + ": " + doc.Errors[0].Message
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// discard drains a little of an unwanted body so the connection can be
// reused, and closes it.
func discard(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}

type noRetryKey struct{}

// WithoutRetries returns a context under which each request is tried once:
// for callers that have a fallback (the cache revalidating a tag it holds)
// and want a fast answer more than a persistent one.
func WithoutRetries(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRetryKey{}, true)
}
