// Package ociupstream holds fake OCI upstreams on loopback for tests of
// the pull-through cache: a registry whose blob requests redirect, and the
// fake cloud metadata service they redirect to. Only tests import it.
package ociupstream

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// MetadataPath is where RedirectBlobs sends blob requests on a Metadata
// service: the path of a node's cloud credentials.
const MetadataPath = "/latest/meta-data/iam/security-credentials/node"

// MetadataBody returns what Metadata answers: a fake cloud credential of
// 1,581 bytes whose secret is a run of 's'.
func MetadataBody() []byte {
	return []byte(`{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAFAKEFAKEFAKE","SecretAccessKey":"` +
		strings.Repeat("s", 1581-122) + `","Token":"t","Expiration":"2030"}`)
}

// Metadata is a fake cloud metadata service on loopback. It promises more
// than it sends (Content-Length 4096), sends MetadataBody, flushes, and
// holds the response open until the client goes or the test ends: bytes
// a proxy streams on arrive before any digest check could run.
type Metadata struct {
	*httptest.Server
	hits atomic.Int32
}

// NewMetadata starts a Metadata service, closed when the test ends.
func NewMetadata(t testing.TB) *Metadata {
	t.Helper()
	m := &Metadata{}
	body := MetadataBody()
	release := make(chan struct{})
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.hits.Add(1)
		w.Header().Set("Content-Length", "4096")
		w.Write(body)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(m.Close)
	t.Cleanup(func() { close(release) }) // runs first: held responses end, then Close
	return m
}

// Hits is the number of requests the service has seen.
func (m *Metadata) Hits() int { return int(m.hits.Load()) }

// RedirectBlobs starts an upstream registry on loopback that answers every
// request for a blob with a 307 to target+MetadataPath and anything else
// with 404. It is closed when the test ends.
func RedirectBlobs(t testing.TB, target string) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			http.Redirect(w, r, target+MetadataPath, http.StatusTemporaryRedirect)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(up.Close)
	return up
}
