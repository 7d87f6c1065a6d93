package upstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The kinds of failure, for errors.Is. Every error the Client returns is an
// *Error whose Kind is one of these.
var (
	// ErrNotFound: the upstream says the manifest, blob or repository does
	// not exist (404). Never retried.
	ErrNotFound = errors.New("not found upstream")
	// ErrUnauthorized: the upstream refused access (401 after answering its
	// challenge, 403, or a token realm refusing the credentials).
	ErrUnauthorized = errors.New("upstream refused access")
	// ErrUnavailable: the upstream could not be reached, timed out, kept
	// answering 5xx, or a body broke off mid-stream. The cause is wrapped.
	ErrUnavailable = errors.New("upstream unavailable")
	// ErrRateLimited is the ErrUnavailable of an upstream that kept answering
	// 429 Too Many Requests; errors.Is(err, ErrUnavailable) holds too.
	ErrRateLimited = fmt.Errorf("%w: rate limited", ErrUnavailable)
	// ErrBadResponse: the upstream answered something unusable: content
	// that does not match its digest, an oversize or invalid manifest, an
	// inconsistent Content-Length or Content-Range, an unexpected status.
	ErrBadResponse = errors.New("invalid upstream response")
	// ErrInvalidRequest: the caller passed a host or repository name that
	// cannot be requested; nothing was sent.
	ErrInvalidRequest = errors.New("invalid upstream request")
)

// Error is what every Client method returns on failure. Error() is for
// logs: it may contain the endpoint's address (inside Err). Text for a
// registry client comes from ClientMessage.
type Error struct {
	Kind       error         // ErrNotFound, ErrUnauthorized, ErrUnavailable, ErrRateLimited, ErrBadResponse or ErrInvalidRequest
	Op         string        // what was being done: "get manifest", "get blob", "read blob", "fetch token" …
	Host       string        // the upstream host as the caller named it
	Repo       string        // normalized repository
	Ref        string        // tag or digest, when there is one
	Status     int           // HTTP status of the last response, 0 when there was none
	RetryAfter time.Duration // for ErrRateLimited: how long the upstream asked to wait
	// Reason is a short summary without addresses or credentials, safe for
	// clients ("content does not match its digest", "no answer within 10s").
	Reason string
	Err    error // the underlying cause, may be nil

	retry bool // worth another attempt
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Host != "" {
		b.WriteString(" ")
		b.WriteString(e.Host)
		if e.Repo != "" {
			b.WriteString("/")
			b.WriteString(e.Repo)
		}
		if e.Ref != "" {
			if strings.Contains(e.Ref, ":") {
				b.WriteString("@")
			} else {
				b.WriteString(":")
			}
			b.WriteString(e.Ref)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Kind.Error())
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// ClientMessage returns text about err that is safe to show a registry
// client: it names no address, credential or internal detail, only what
// kind of failure happened and, for an invalid response, which check
// failed. It returns "" for a nil error.
func ClientMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	reason := ""
	if errors.As(err, &e) {
		reason = e.Reason
	}
	switch {
	case errors.Is(err, context.Canceled):
		return "the upstream request was cancelled"
	case errors.Is(err, ErrNotFound):
		return "not found in the upstream registry"
	case errors.Is(err, ErrUnauthorized):
		return "the upstream registry refused access; check the credential set configured for it"
	case errors.Is(err, ErrRateLimited):
		return "the upstream registry is rate limiting requests; try again later"
	case errors.Is(err, ErrUnavailable):
		if reason != "" {
			return "the upstream registry is unavailable (" + reason + "); try again later"
		}
		return "the upstream registry is unavailable; try again later"
	case errors.Is(err, ErrBadResponse):
		if reason != "" {
			return "the upstream registry sent an invalid response: " + reason
		}
		return "the upstream registry sent an invalid response"
	case errors.Is(err, ErrInvalidRequest):
		return "invalid upstream host or repository name"
	}
	return "the upstream request failed"
}

// Reasons: fixed texts, so that nothing from the wire reaches a client.
const (
	reasonDigest        = "content does not match its digest"
	reasonTooLarge      = "manifest larger than 4 MiB"
	reasonManifest      = "not a valid manifest"
	reasonIndex         = "not a valid referrers index"
	reasonStatus        = "unexpected HTTP status"
	reasonHeader        = "missing or malformed response headers"
	reasonRange         = "inconsistent Content-Range or Content-Length"
	reasonToken         = "invalid token response"
	reasonChallenge     = "unusable authentication challenge"
	reasonRedirect      = "refused redirect"
	reasonAddress       = "refused connection to an internal address"
	reasonConnect       = "connection failed"
	reasonTLS           = "TLS certificate not trusted"
	reasonServer        = "server error"
	reasonBroken        = "the connection broke off mid-transfer"
	reasonStalled       = "the transfer stalled"
	reasonNoCredentials = "credentials required but none configured"
)
