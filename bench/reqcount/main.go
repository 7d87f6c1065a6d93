// Command reqcount is the storage-request counter of bench/storage.sh: a
// transparent HTTP reverse proxy between one registry and its object
// storage server (Azurite or versitygw) that counts what the registry asks
// of the storage.
//
//	reqcount proxy -listen 127.0.0.1:P -target http://127.0.0.1:Q
//	reqcount mkcontainer -endpoint URL -account A -key K -name C
//
// The proxy forwards every request as it came: same method, path, query,
// headers and Host header (so Azure SharedKey and S3 SigV4 signatures,
// which the client computed for the proxy's address, stay valid at the
// storage server), no added X-Forwarded headers, no compression. It counts
// each request when it arrives, by method and by a coarse operation (see
// classify), and the body bytes each way. Its own endpoints:
//
//	GET  /__counts          the counts so far, one JSON object
//	GET  /__counts?reset=1  the counts, then zero them (one atomic step)
//	POST /__reset           zero the counts
//
// Neither Azure account paths nor S3 bucket names can start with "__", so
// these never hide a storage request.
//
// mkcontainer creates an Azure Blob container with a SharedKey-signed
// request (distribution's azure driver does not create its container).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "proxy":
		err = runProxy(os.Args[2:])
	case "mkcontainer":
		err = runMkContainer(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "reqcount %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: reqcount proxy -listen ADDR -target URL | mkcontainer -endpoint URL -account A -key K -name C")
	os.Exit(2)
}

// Counts is what /__counts reports.
type Counts struct {
	Requests int64            `json:"requests"`
	ByMethod map[string]int64 `json:"by_method"`
	ByOp     map[string]int64 `json:"by_op"`
	// BytesIn is request body bytes sent to the storage (writes);
	// BytesOut is response body bytes sent back to the registry (reads).
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
}

// counter holds the running counts; safe for concurrent use.
type counter struct {
	mu       sync.Mutex
	requests int64
	byMethod map[string]int64
	byOp     map[string]int64
	bytesIn  atomic.Int64
	bytesOut atomic.Int64
}

func newCounter() *counter {
	return &counter{byMethod: map[string]int64{}, byOp: map[string]int64{}}
}

func (c *counter) add(method, op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	c.byMethod[method]++
	c.byOp[op]++
}

// snapshot returns the counts, zeroing them when reset is set.
func (c *counter) snapshot(reset bool) Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := Counts{Requests: c.requests, ByMethod: c.byMethod, ByOp: c.byOp}
	if reset {
		out.BytesIn, out.BytesOut = c.bytesIn.Swap(0), c.bytesOut.Swap(0)
		c.requests, c.byMethod, c.byOp = 0, map[string]int64{}, map[string]int64{}
		return out
	}
	out.BytesIn, out.BytesOut = c.bytesIn.Load(), c.bytesOut.Load()
	out.ByMethod, out.ByOp = clone(c.byMethod), clone(c.byOp)
	return out
}

func clone(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func runProxy(args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	target := fs.String("target", "", "storage server base URL (http://127.0.0.1:PORT)")
	_ = fs.Parse(args)
	u, err := url.Parse(*target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("-target %q: want http://HOST:PORT", *target)
	}
	c := newCounter()
	srv := &http.Server{Addr: *listen, Handler: newHandler(u, c)}
	err = srv.ListenAndServe()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// newHandler serves the counter endpoints and proxies everything else to target.
func newHandler(target *url.URL, c *counter) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = target.Scheme
			r.Out.URL.Host = target.Host
			r.Out.Host = r.In.Host // the signed Host, as the client sent it
		},
		Transport: &http.Transport{
			Proxy:               nil,
			DisableCompression:  true, // no Accept-Encoding added: the request goes as it came
			MaxIdleConnsPerHost: 256,
			WriteBufferSize:     256 << 10,
			ReadBufferSize:      256 << 10,
		},
		FlushInterval: -1, // stream bodies as they come
		ModifyResponse: func(resp *http.Response) error {
			resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.bytesOut}
			return nil
		},
		ErrorLog: log.New(os.Stderr, "reqcount: ", 0),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No ServeMux: it would clean and redirect object keys holding "//".
		switch {
		case r.URL.Path == "/__counts" && r.Method == http.MethodGet:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(c.snapshot(r.URL.Query().Get("reset") == "1"))
		case r.URL.Path == "/__reset" && r.Method == http.MethodPost:
			c.snapshot(true)
			w.WriteHeader(http.StatusNoContent)
		default:
			c.add(r.Method, classify(r))
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = &countingBody{ReadCloser: r.Body, n: &c.bytesIn}
			}
			rp.ServeHTTP(w, r)
		}
	})
}

// countingBody adds the bytes read through it to n.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	k, err := b.ReadCloser.Read(p)
	b.n.Add(int64(k))
	return k, err
}
