package cache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/registry"
	"github.com/airlockdev/airlock/internal/upstream"
)

// BenchmarkColdFill is one cold fill of a 64 MiB blob from an in-memory
// upstream, read to its end by one client through WriteTo: the time to
// the client's last byte (receive, write, hash, verify). The commit (fsync,
// rename) that follows is waited for outside the timer. bench/fill.sh
// measures fills over real sockets.
func BenchmarkColdFill(b *testing.B) {
	const size = 64 << 20
	up := newFake()
	content := random(size)
	d := up.addBlob(content)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		s, _ := newStore(b, up, nil)
		b.StartTimer()
		r, n, err := s.OpenBlob(context.Background(), "aks/x", d)
		if err != nil {
			b.Fatal(err)
		}
		got, err := r.(io.WriterTo).WriteTo(io.Discard)
		r.Close()
		if err != nil || got != n || n != size {
			b.Fatalf("WriteTo = %d, %v (size %d)", got, err, n)
		}
		b.StopTimer()
		waitFills(b, s)
		b.StartTimer()
	}
}

// BenchmarkColdFillLoopback is one cold fill over real sockets, the way
// bench/fill.sh runs it but in one process: an upstream on loopback serves
// the blob from a file (sendfile, as docker-registry does), the real
// upstream client fetches it, the registry handler serves it to one client
// over TCP, which reads it to its end with a 1 MiB buffer. The time is to
// the client's last byte; the commit is waited for outside the timer. Its
// CPU profile (-cpuprofile) shows the fill's own costs beside the client's
// and the upstream's.
func BenchmarkColdFillLoopback(b *testing.B) {
	for _, mib := range []int{64, 256} {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) { benchColdFillLoopback(b, mib<<20) })
	}
}

func benchColdFillLoopback(b *testing.B, size int) {
	content := random(size)
	d := oci.SHA256.FromBytes(content)
	blobFile := filepath.Join(b.TempDir(), "blob")
	if err := os.WriteFile(blobFile, content, 0o600); err != nil {
		b.Fatal(err)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/blobs/"+string(d)) {
			http.NotFound(w, r)
			return
		}
		f, err := os.Open(blobFile)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		w.Header().Set("Docker-Content-Digest", string(d))
		http.ServeContent(w, r, "", time.Time{}, f)
	}))
	b.Cleanup(up.Close)
	client, err := upstream.New(upstream.Options{
		Endpoints:   map[string]upstream.Endpoint{"mcr.microsoft.com": {URL: up.URL}},
		DialContext: loopbackOnly,
	})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(size))
	for b.Loop() {
		b.StopTimer()
		bs, err := blobstore.Open(b.TempDir(), blobstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		cfg := &Config{CacheRules: []Rule{{Name: "mcr", SourceRepo: "mcr.microsoft.com/*", TargetRepo: "aks/*"}}}
		cfg.SetDefaults()
		s, err := New(cfg, Deps{Local: registry.NewLocalStore(bs), Blobs: bs, Upstream: FromClient(client)})
		if err != nil {
			b.Fatal(err)
		}
		anon := true
		reg, err := registry.New(&registry.Config{AnonymousPull: &anon}, registry.Deps{Store: s, Resolver: s})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(reg.Handler())
		b.StartTimer()
		resp, err := http.Get(srv.URL + "/v2/aks/app/blobs/" + string(d))
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for {
			m, err := resp.Body.Read(buf)
			n += int64(m)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		resp.Body.Close()
		if n != int64(size) {
			b.Fatalf("client got %d bytes, want %d", n, size)
		}
		b.StopTimer()
		waitFills(b, s)
		srv.Close()
		b.StartTimer()
	}
}
