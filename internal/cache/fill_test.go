package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
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
