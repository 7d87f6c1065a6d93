package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

// blobServer serves blob at every blobs/ path, honouring Range unless
// ignoreRange.
func blobServer(blob []byte, ignoreRange bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/blobs/") {
			http.NotFound(w, r)
			return
		}
		if rg := r.Header.Get("Range"); rg != "" && !ignoreRange {
			start, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
			if err != nil || start >= len(blob) {
				w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
				return
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(blob)-1, len(blob)))
			w.Header().Set("Content-Length", strconv.Itoa(len(blob)-start))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(blob[start:])
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		w.Write(blob)
	}
}

func TestGetBlob(t *testing.T) {
	blob := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	d := oci.SHA256.FromBytes(blob)
	tests := []struct {
		name        string
		offset      int64
		ignoreRange bool
	}{
		{name: "whole"},
		{name: "resume with Range", offset: 1000},
		{name: "resume when the upstream ignores Range", offset: 1000, ignoreRange: true},
		{name: "offset at the end", offset: int64(len(blob)), ignoreRange: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, rec := serve(t, blobServer(blob, tt.ignoreRange))
			c := newTestClient(t, srv.URL, nil)
			rc, total, err := c.GetBlob(context.Background(), testHost, "app", d, tt.offset)
			if err != nil {
				t.Fatalf("GetBlob = %v", err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("reading the blob: %v", err)
			}
			if total != int64(len(blob)) {
				t.Errorf("GetBlob total = %d, want %d", total, len(blob))
			}
			if !bytes.Equal(got, blob[tt.offset:]) {
				t.Errorf("GetBlob(offset %d) read %d bytes, want the %d from the offset", tt.offset, len(got), len(blob)-int(tt.offset))
			}
			wantRange := ""
			if tt.offset > 0 {
				wantRange = fmt.Sprintf("bytes=%d-", tt.offset)
			}
			if r := rec.all(); len(r) != 1 || r[0].Range != wantRange || r[0].Path != "/v2/app/blobs/"+string(d) {
				t.Errorf("requests = %+v, want one GET with Range %q", r, wantRange)
			}
			wantBytes := len(blob) - int(tt.offset)
			if tt.ignoreRange {
				wantBytes = len(blob)
			}
			if got := counter(t, c.m.BytesReceived, testHost, "blob"); got != float64(wantBytes) {
				t.Errorf("received_bytes_total{blob} = %v, want %d", got, wantBytes)
			}
		})
	}
}

func TestGetBlobBadRange(t *testing.T) {
	blob := []byte("hello blob")
	tests := []struct {
		name         string
		contentRange string
	}{
		{name: "wrong start", contentRange: "bytes 0-9/10"},
		{name: "garbage", contentRange: "bytes=3-"},
		{name: "missing", contentRange: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.contentRange != "" {
					w.Header().Set("Content-Range", tt.contentRange)
				}
				w.WriteHeader(http.StatusPartialContent)
				w.Write(blob)
			})
			c := newTestClient(t, srv.URL, nil)
			_, _, err := c.GetBlob(context.Background(), testHost, "app", oci.SHA256.FromBytes(blob), 3)
			if !errors.Is(err, ErrBadResponse) {
				t.Errorf("GetBlob = %v, want ErrBadResponse", err)
			}
		})
	}
	t.Run("200 shorter than the offset", func(t *testing.T) {
		srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
			w.Write(blob[:2]) // flushed without Content-Length: chunked
			w.(http.Flusher).Flush()
			w.Write(blob[2:4])
		})
		c := newTestClient(t, srv.URL, nil)
		_, _, err := c.GetBlob(context.Background(), testHost, "app", oci.SHA256.FromBytes(blob), 8)
		if !errors.Is(err, ErrBadResponse) {
			t.Errorf("GetBlob past the end of a chunked body = %v, want ErrBadResponse", err)
		}
	})
	t.Run("416", func(t *testing.T) {
		srv, _ := serve(t, blobServer(blob, false))
		c := newTestClient(t, srv.URL, nil)
		_, _, err := c.GetBlob(context.Background(), testHost, "app", oci.SHA256.FromBytes(blob), 100)
		if !errors.Is(err, ErrBadResponse) {
			t.Errorf("GetBlob beyond the end = %v, want ErrBadResponse", err)
		}
	})
}

func TestGetBlobBrokenBodyIsNotRetried(t *testing.T) {
	blob := bytes.Repeat([]byte("x"), 10000)
	srv, rec := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		w.Write(blob[:4000])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	c := newTestClient(t, srv.URL, nil)
	rc, total, err := c.GetBlob(context.Background(), testHost, "app", oci.SHA256.FromBytes(blob), 0)
	if err != nil {
		t.Fatalf("GetBlob = %v", err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("reading a broken body = %v, want ErrUnavailable", err)
	}
	var e *Error
	if errors.As(err, &e); e.Reason != reasonBroken || e.Op != "read blob" {
		t.Errorf("error = %+v, want op read blob, reason %q", e, reasonBroken)
	}
	if len(got) != 4000 || total != 10000 {
		t.Errorf("read %d of total %d, want 4000 of 10000", len(got), total)
	}
	if n := len(rec.all()); n != 1 {
		t.Errorf("upstream saw %d requests, want 1 (a broken body is the caller's to resume)", n)
	}
}

func TestGetBlobStall(t *testing.T) {
	blob := bytes.Repeat([]byte("y"), 1000)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		w.Write(blob[:10])
		w.(http.Flusher).Flush()
		select { // trickle: slower than the stall timeout
		case <-done:
		case <-r.Context().Done():
		}
	})
	// A body may take longer than Timeout as a whole; only stalls count.
	c := newTestClient(t, srv.URL, func(o *Options) { o.Timeout = 100 * time.Millisecond; o.StallTimeout = 300 * time.Millisecond })
	rc, _, err := c.GetBlob(context.Background(), testHost, "app", oci.SHA256.FromBytes(blob), 0)
	if err != nil {
		t.Fatalf("GetBlob = %v", err)
	}
	defer rc.Close()
	start := time.Now()
	_, err = io.ReadAll(rc)
	el := time.Since(start)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrUnavailable) || e.Reason != reasonStalled {
		t.Fatalf("reading a stalled body = %v, want ErrUnavailable, %q", err, reasonStalled)
	}
	if el < 250*time.Millisecond || el > 2*time.Second {
		t.Errorf("stall detected after %s, want about 300ms", el)
	}
}

func TestGetBlobSlowBodyOutlivesTimeout(t *testing.T) {
	blob := bytes.Repeat([]byte("z"), 50)
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		for i := range blob {
			w.Write(blob[i : i+1])
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond)
		}
	})
	c := newTestClient(t, srv.URL, func(o *Options) { o.Timeout = 200 * time.Millisecond; o.StallTimeout = 200 * time.Millisecond })
	rc, _, err := c.GetBlob(context.Background(), testHost, "app", oci.SHA256.FromBytes(blob), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc) // ~500ms in total, never 200ms without a byte
	if err != nil || !bytes.Equal(got, blob) {
		t.Errorf("slow body: read %d bytes, err %v; want all %d", len(got), err, len(blob))
	}
}

func TestGetBlobRedirect(t *testing.T) {
	blob := []byte("layer stored elsewhere")
	d := oci.SHA256.FromBytes(blob)
	storage, storageRec := serve(t, blobServer(blob, false))
	tests := []struct {
		name     string
		target   func(r *http.Request) string
		wantAuth bool
	}{
		// Same host name, another port: net/http alone would forward Authorization.
		{name: "other host", target: func(r *http.Request) string { return storage.URL + r.URL.Path }},
		{name: "same host", target: func(r *http.Request) string { return "/storage" + r.URL.Path }, wantAuth: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var storageAuth atomic.Value
			storageAuth.Store("")
			srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/storage/") {
					storageAuth.Store(r.Header.Get("Authorization"))
					blobServer(blob, false)(w, r)
					return
				}
				if r.Header.Get("Authorization") != "Basic Y2k6cHc=" {
					w.Header().Set("WWW-Authenticate", `Basic realm="r"`)
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				http.Redirect(w, r, tt.target(r), http.StatusTemporaryRedirect)
			})
			before := len(storageRec.all())
			c := newTestClient(t, srv.URL, func(o *Options) {
				o.Credentials = map[string]Credential{testHost: {"ci", "pw"}}
				// The storage server stands for a CDN on another host; it is
				// on loopback, so its address is allowed as internal.
				o.AllowedInternal = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
			})
			rc, total, err := c.GetBlob(context.Background(), testHost, "app", d, 5)
			if err != nil {
				t.Fatalf("GetBlob = %v", err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, blob[5:]) || total != int64(len(blob)) {
				t.Fatalf("GetBlob via redirect read %q (total %d, err %v), want %q", got, total, err, blob[5:])
			}
			if !tt.wantAuth {
				r := storageRec.all()[before:]
				if len(r) != 1 || r[0].Auth != "" || r[0].Range != "bytes=5-" {
					t.Errorf("storage saw %+v, want one request with Range and without Authorization", r)
				}
			} else if storageAuth.Load() == "" {
				t.Errorf("same-host redirect lost Authorization")
			}
		})
	}
}

func TestRedirectToPlainHTTPRefused(t *testing.T) {
	plain, plainRec := serve(t, blobServer([]byte("x"), false))
	srv := newTLSServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	c := newTestClient(t, srv.URL, func(o *Options) { o.Endpoints[testHost] = Endpoint{URL: srv.URL, CAFile: writeCA(t, srv)} })
	_, _, err := c.GetBlob(context.Background(), testHost, "app", oci.SHA256.FromBytes([]byte("x")), 0)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrBadResponse) || e.Reason != reasonRedirect {
		t.Errorf("GetBlob redirected to http = %v, want ErrBadResponse %q", err, reasonRedirect)
	}
	if n := len(plainRec.all()); n != 0 {
		t.Errorf("plain-http target saw %d requests, want 0", n)
	}
}

func TestGetBlobNotFound(t *testing.T) {
	srv, rec := serve(t, func(w http.ResponseWriter, r *http.Request) { ociError(w, http.StatusNotFound, oci.CodeBlobUnknown) })
	c := newTestClient(t, srv.URL, nil)
	_, _, err := c.GetBlob(context.Background(), testHost, "app", oci.SHA256.FromBytes(nil), 0)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("GetBlob = %v, want ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "BLOB_UNKNOWN") {
		t.Errorf("error for the log %q does not carry the upstream's code", err)
	}
	if n := len(rec.all()); n != 1 {
		t.Errorf("requests = %d, want 1", n)
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 0-9/10", 0, 9, 10, true},
		{"bytes 5-9/*", 5, 9, -1, true},
		{"bytes 5-9/9", 0, 0, 0, false},
		{"bytes 9-5/10", 0, 0, 0, false},
		{"bytes -1-5/10", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"bytes 0-1", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, tt := range tests {
		s, e, n, ok := parseContentRange(tt.in)
		if s != tt.start || e != tt.end || n != tt.total || ok != tt.ok {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v, want %d, %d, %d, %v", tt.in, s, e, n, ok, tt.start, tt.end, tt.total, tt.ok)
		}
	}
}
