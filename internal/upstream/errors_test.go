package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

func TestClientMessageIsSafe(t *testing.T) {
	// Real failures against a loopback server with credentials, so the
	// errors carry the endpoint address, and the secret is in play.
	body, dg := testImage(t)
	var mode string
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch mode {
		case "404":
			ociError(w, http.StatusNotFound, oci.CodeManifestUnknown)
		case "401":
			w.Header().Set("WWW-Authenticate", `Basic realm="x"`)
			w.WriteHeader(http.StatusUnauthorized)
		case "503":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "429":
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
		case "digest":
			other, _ := testImage(t, "x")
			w.Write(other)
		default:
			w.Write(body)
		}
	})
	c := newTestClient(t, srv.URL, func(o *Options) {
		o.Credentials = map[string]Credential{testHost: {"ci", "s3cret"}}
		o.Timeout = time.Second
	})
	u, _ := url.Parse(srv.URL)
	tests := []struct {
		mode string
		want string // a phrase the message must contain
		kind error
	}{
		{"404", "not found", ErrNotFound},
		{"401", "refused access", ErrUnauthorized},
		{"503", "unavailable", ErrUnavailable},
		{"429", "rate limiting", ErrRateLimited},
		{"digest", "does not match its digest", ErrBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			mode = tt.mode
			_, err := c.GetManifest(context.Background(), testHost, "app", oci.Reference{Digest: dg})
			if !errors.Is(err, tt.kind) {
				t.Fatalf("GetManifest = %v, want %v", err, tt.kind)
			}
			msg := ClientMessage(err)
			if !strings.Contains(msg, tt.want) {
				t.Errorf("ClientMessage = %q, want it to say %q", msg, tt.want)
			}
			for _, secret := range []string{u.Host, u.Hostname(), "s3cret", "Y2k6czNjcmV0", "127.0.0.1"} {
				if strings.Contains(msg, secret) {
					t.Errorf("ClientMessage = %q leaks %q", msg, secret)
				}
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "Y2k6czNjcmV0") {
				t.Errorf("log error %q leaks the credentials", err)
			}
		})
	}
	unreachable := newTestClient(t, "http://127.0.0.1:1", func(o *Options) { o.Timeout = 300 * time.Millisecond })
	_, err := unreachable.GetManifest(context.Background(), testHost, "app", oci.Reference{Tag: "v1"})
	if msg := ClientMessage(err); strings.Contains(msg, "127.0.0.1") || !strings.Contains(msg, "unavailable") {
		t.Errorf("ClientMessage(unreachable) = %q", msg)
	}
}

func TestClientMessageKinds(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{&Error{Kind: ErrUnavailable, Err: context.Canceled}, "the upstream request was cancelled"},
		{fmt.Errorf("cache: %w", &Error{Kind: ErrBadResponse, Reason: reasonTooLarge}), "the upstream registry sent an invalid response: manifest larger than 4 MiB"},
		{&Error{Kind: ErrUnavailable, Reason: "no answer within 10s", Err: errors.New("dial tcp 10.0.0.1:443: i/o timeout")}, "the upstream registry is unavailable (no answer within 10s); try again later"},
		{&Error{Kind: ErrInvalidRequest}, "invalid upstream host or repository name"},
		{errors.New("dial tcp 10.0.0.1:443"), "the upstream request failed"},
	}
	for _, tt := range tests {
		if got := ClientMessage(tt.err); got != tt.want {
			t.Errorf("ClientMessage(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
