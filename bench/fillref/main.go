// Command fillref is the floor of a cache fill: it does only the work any
// fill must do — read a blob from the socket, sha256 it, write it to a file,
// fsync and close — and reports what that cost, so bench/fill.sh can put
// airlock's CPU per GiB beside the least a fill can spend. It is also the
// client of the bench's pulls (straight from the upstream, or through
// airlock).
//
//	fillref -url http://127.0.0.1:PORT/v2/REPO/blobs/sha256:… -o FILE [-digest sha256:…]
//
// It prints one JSON line: bytes, recv_s (wall, from the request to the
// body's end), seconds (to the fsynced, closed file), cpu_s (user+system of this process, getrusage) and the
// sha256 it computed. With -digest a mismatch is an error (exit 1).
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"syscall"
	"time"
)

type result struct {
	Bytes   int64   `json:"bytes"`
	Recv    float64 `json:"recv_s"`
	Seconds float64 `json:"seconds"`
	CPU     float64 `json:"cpu_s"`
	Digest  string  `json:"digest"`
}

func main() {
	url := flag.String("url", "", "blob `URL` to GET")
	out := flag.String("o", "", "output `FILE` (created or truncated)")
	want := flag.String("digest", "", "expected `DIGEST` (sha256:…); a mismatch fails")
	bufSize := flag.Int("buf", 1<<20, "read buffer `BYTES`")
	flag.Parse()
	if *url == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "fillref: -url and -o are required")
		os.Exit(2)
	}
	r, err := fetch(*url, *out, *bufSize)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fillref:", err)
		os.Exit(1)
	}
	if *want != "" && r.Digest != *want {
		fmt.Fprintf(os.Stderr, "fillref: got %s, want %s\n", r.Digest, *want)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

func fetch(url, out string, bufSize int) (result, error) {
	start := time.Now()
	cpu0 := cpuSeconds()
	resp, err := http.Get(url)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return result{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(out)
	if err != nil {
		return result{}, err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, bufSize)
	var n int64
	for {
		m, rerr := resp.Body.Read(buf)
		if m > 0 {
			h.Write(buf[:m])
			if _, err := f.Write(buf[:m]); err != nil {
				return result{}, err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return result{}, rerr
		}
	}
	recv := time.Since(start).Seconds()
	if err := f.Sync(); err != nil {
		return result{}, err
	}
	if err := f.Close(); err != nil {
		return result{}, err
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return result{}, fmt.Errorf("got %d bytes, Content-Length %d", n, resp.ContentLength)
	}
	return result{
		Bytes:   n,
		Recv:    recv,
		Seconds: time.Since(start).Seconds(),
		CPU:     cpuSeconds() - cpu0,
		Digest:  "sha256:" + hex.EncodeToString(h.Sum(nil)),
	}, nil
}

// cpuSeconds is the user+system CPU time of this process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
