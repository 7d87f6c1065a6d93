package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/registry"
	"github.com/airlockdev/airlock/internal/upstream"
)

// serveWriteTo is an HTTP/1 server on loopback answering every GET of
// /blob with d from s through the fill reader's WriteTo, the way a
// response reaches sendfile: Content-Length, header, then WriteTo(w).
func serveWriteTo(t *testing.T, s *Store, d oci.Digest) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, size, err := s.OpenBlob(r.Context(), "aks/x", d)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer f.Close()
		wt, ok := f.(io.WriterTo)
		if !ok {
			http.Error(w, "not a WriterTo", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		if _, err := wt.WriteTo(w); err != nil {
			panic(http.ErrAbortHandler)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/blob"
}

func TestWriteToStreamsOverTCPAndHoldsBackLastByte(t *testing.T) {
	up := newFake()
	content := random(1 << 20)
	d := up.addBlob(content)
	up.gate = make(chan struct{})
	s, bs := newStore(t, up, nil)
	url := serveWriteTo(t, s, d)

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	half := len(content) / 2
	// The upstream stops after its first half: all of it but the last
	// byte written so far may reach the client, and no more.
	first := make([]byte, half-1)
	if _, err := io.ReadFull(resp.Body, first); err != nil || !bytes.Equal(first, content[:half-1]) {
		t.Fatalf("reading the first half while the upstream stalls = %v (equal %v)", err, bytes.Equal(first, content[:half-1]))
	}
	extra := make(chan error, 1)
	next := make([]byte, 1)
	go func() {
		_, err := io.ReadFull(resp.Body, next)
		extra <- err
	}()
	select {
	case err := <-extra:
		t.Fatalf("byte %d reached the client before the upstream sent more (err %v), want it held back", half-1, err)
	case <-time.After(50 * time.Millisecond):
	}
	close(up.gate)
	if err := <-extra; err != nil {
		t.Fatalf("reading on after the upstream resumed = %v", err)
	}
	rest, err := io.ReadAll(resp.Body)
	got := append(append(first, next...), rest...)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("whole body = %d bytes, %v; want %d equal bytes", len(got), err, len(content))
	}
	waitFills(t, s)
	if _, err := bs.BlobLinked("aks/x", d); err != nil {
		t.Errorf("blob not committed after the fill: %v", err)
	}
}

func TestWriteToCorruptUpstreamAbortsOverTCP(t *testing.T) {
	up := newFake()
	content := random(1 << 20)
	d := up.addBlob(content)
	up.corrupt[d] = true
	up.gate = make(chan struct{}) // the fill is still running when the response starts
	s, _ := newStore(t, up, nil)
	resp, err := http.Get(serveWriteTo(t, s, d))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET during the fill = %s, want 200 and a stream", resp.Status)
	}
	close(up.gate)
	got, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("GET of a blob the upstream corrupted = %d bytes and a clean end, want a broken body", len(got))
	}
	if len(got) >= len(content) {
		t.Errorf("GET of a corrupt blob delivered %d bytes, want fewer than %d", len(got), len(content))
	}
}

// plainWriter hides bytes.Buffer's ReadFrom: WriteTo's buffered path.
type plainWriter struct{ w io.Writer }

func (p plainWriter) Write(b []byte) (int, error) { return p.w.Write(b) }

func TestWriteTo(t *testing.T) {
	tests := []struct {
		name    string
		corrupt bool
		plain   bool // a writer without ReadFrom
	}{
		{name: "readerfrom"},
		{name: "plain", plain: true},
		{name: "readerfrom corrupt", corrupt: true},
		{name: "plain corrupt", corrupt: true, plain: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newFake()
			content := random(3<<20 + 17)
			d := up.addBlob(content)
			up.corrupt[d] = tt.corrupt
			up.gate = make(chan struct{}) // the fill runs until the reader is open
			s, _ := newStore(t, up, nil)
			r, _, err := s.OpenBlob(context.Background(), "aks/x", d)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			// Start past the beginning: WriteTo continues where Read left.
			// The reads go on to the end, so they may stream.
			r.(*fillReader).StreamToEnd()
			head := make([]byte, 100)
			if _, err := io.ReadFull(r, head); err != nil {
				t.Fatal(err)
			}
			close(up.gate)
			var buf bytes.Buffer
			var w io.Writer = &buf
			if tt.plain {
				w = plainWriter{&buf}
			}
			n, err := r.(io.WriterTo).WriteTo(w)
			if n != int64(buf.Len()) {
				t.Errorf("WriteTo = %d, but the writer got %d bytes", n, buf.Len())
			}
			got := append(head, buf.Bytes()...)
			if tt.corrupt {
				if !errors.Is(err, errFillFailed) || len(got) >= len(content) {
					t.Errorf("WriteTo of corrupt bytes = %d bytes, %v; want fewer than %d and errFillFailed", len(got), err, len(content))
				}
				return
			}
			if err != nil || !bytes.Equal(got, content) {
				t.Errorf("WriteTo = %d bytes, %v; want %d equal bytes", len(got), err, len(content))
			}
		})
	}
}

// A fill fills each buffer before it hands it on, but a client streaming
// it must still get every byte received so far when the upstream stalls
// mid-blob: here a real upstream on loopback, through the upstream client,
// sends part of the blob (a small part; more than a buffer and a part) and
// then holds its connection open. The client reads those bytes but the
// last (held back until the digest verified), waiting for them with a
// generous deadline; then the upstream sends the rest and the client gets
// the whole blob, which is cached.
func TestStreamingClientGetsBytesOfStalledUpstream(t *testing.T) {
	for _, tt := range []struct {
		name       string
		size, sent int
	}{
		{name: "inside the first buffer", size: 100 << 10, sent: 1000},
		{name: "past a full buffer", size: 3<<20 + 17, sent: fillChunk + 12345},
	} {
		t.Run(tt.name, func(t *testing.T) {
			content := random(tt.size)
			d := oci.SHA256.FromBytes(content)
			resume := make(chan struct{})
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(content)))
				w.Header().Set("Docker-Content-Digest", string(d))
				w.Write(content[:tt.sent])
				w.(http.Flusher).Flush()
				select {
				case <-resume:
				case <-r.Context().Done():
					return
				}
				w.Write(content[tt.sent:])
			}))
			t.Cleanup(up.Close)
			var once sync.Once
			release := func() { once.Do(func() { close(resume) }) }
			t.Cleanup(release) // before up.Close: the handler returns
			client, err := upstream.New(upstream.Options{
				Endpoints:   map[string]upstream.Endpoint{"mcr.microsoft.com": {URL: up.URL}},
				Timeout:     time.Minute, // the stall lasts as long as the test wants
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
			cfg.UpstreamTimeout = time.Minute
			s, err := New(cfg, Deps{Local: registry.NewLocalStore(bs), Blobs: bs, Upstream: FromClient(client)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { waitFills(t, s) })

			resp, err := http.Get(serveWriteTo(t, s, d))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			// While the fill runs, a streaming reader gets all it wrote but
			// the last byte (held until the digest verified).
			want := tt.sent - 1
			first := make([]byte, want)
			got := make(chan error, 1)
			go func() {
				_, err := io.ReadFull(resp.Body, first)
				got <- err
			}()
			select {
			case err := <-got:
				if err != nil || !bytes.Equal(first, content[:want]) {
					t.Fatalf("reading the %d bytes sent before the stall = %v (equal %v)", want, err, bytes.Equal(first, content[:want]))
				}
			case <-time.After(30 * time.Second):
				release()
				t.Fatalf("the first %d of the %d bytes the upstream sent before it stalled did not reach the streaming client in 30s", want, tt.sent)
			}
			release()
			rest, err := io.ReadAll(resp.Body)
			if all := append(first, rest...); err != nil || !bytes.Equal(all, content) {
				t.Fatalf("whole body = %d bytes, %v; want %d equal bytes", len(all), err, len(content))
			}
			waitFills(t, s)
			if _, err := bs.BlobLinked("aks/x", d); err != nil {
				t.Errorf("blob not committed after the fill: %v", err)
			}
		})
	}
}
