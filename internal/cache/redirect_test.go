package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/registry"
	"github.com/airlockdev/airlock/internal/testkit/ociupstream"
	"github.com/airlockdev/airlock/internal/upstream"
)

// loopbackOnly dials only loopback IP literals: nothing a test does can
// leave the machine or look a name up.
func loopbackOnly(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("test dialer: refusing %q (only loopback IP literals)", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// rawGet sends one GET over a plain TCP connection and returns the status
// (0 when no response head arrived) and every byte after the head, as curl
// would show them, even when the server aborts the connection mid-body.
func rawGet(t *testing.T, addr, path string) (int, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr)
	all, _ := io.ReadAll(c) // an abort ends the read with an error; what came before counts
	head, body, ok := bytes.Cut(all, []byte("\r\n\r\n"))
	if !ok {
		return 0, nil
	}
	status := 0
	fmt.Sscanf(string(head), "HTTP/1.1 %d", &status)
	return status, body
}

// The security review's reproduction, through the registry, the cache and
// the real upstream client: a configured upstream on loopback answers a
// blob GET with a 307 to another loopback port (a fake metadata service).
// The anonymous client must get an error and no byte, the metadata
// service no request, and the cache must commit nothing.
func TestBlobRedirectToInternalAddressNeverReachesClient(t *testing.T) {
	if n := len(ociupstream.MetadataBody()); n != 1581 {
		t.Fatalf("metadata body is %d bytes, want 1581", n)
	}
	// The fake metadata service promises more than it sends and then
	// waits, so that whatever it sent is streamed onwards before any
	// digest check could run: the review's worst case.
	meta := ociupstream.NewMetadata(t)
	up := ociupstream.RedirectBlobs(t, meta.URL)

	client, err := upstream.New(upstream.Options{
		Endpoints:   map[string]upstream.Endpoint{"mcr.microsoft.com": {URL: up.URL}},
		Timeout:     2 * time.Second,
		Backoff:     10 * time.Millisecond,
		DialContext: loopbackOnly,
	})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := blobstore.Open(t.TempDir(), blobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{CacheRules: []Rule{{Name: "mcr", SourceRepo: "mcr.microsoft.com/*", TargetRepo: "aks/*"}}}
	cfg.SetDefaults()
	cfg.UpstreamTimeout = 2 * time.Second
	s, err := New(cfg, Deps{Local: registry.NewLocalStore(bs), Blobs: bs, Upstream: FromClient(client)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waitFills(t, s) })
	anon := true
	reg, err := registry.New(&registry.Config{AnonymousPull: &anon}, registry.Deps{Store: s, Resolver: s})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg.Handler())
	t.Cleanup(srv.Close)

	d := oci.SHA256.FromBytes([]byte("the layer the manifest names"))
	status, body := rawGet(t, srv.Listener.Addr().String(), "/v2/aks/app/blobs/"+string(d))
	waitFills(t, s)
	if leaked := bytes.Contains(body, []byte("SecretAccessKey")) || bytes.Contains(body, []byte("sssssss")); leaked || status < 400 {
		t.Errorf("anonymous client received status %d and %d body bytes (metadata bytes among them: %v), want an error and no metadata byte", status, len(body), leaked)
	}
	if n := meta.Hits(); n != 0 {
		t.Errorf("metadata service saw %d requests, want 0", n)
	}
	if _, err := bs.BlobLinked("aks/app", d); err == nil {
		t.Errorf("cache linked %s after a refused redirect", d)
	}
	if _, err := bs.Stat(d); err == nil {
		t.Errorf("cache stored %s after a refused redirect", d)
	}
	t.Logf("anonymous client: status %d, %d body bytes: %s", status, len(body), bytes.TrimSpace(body))
}
