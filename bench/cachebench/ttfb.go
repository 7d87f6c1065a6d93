package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

type ttfbResult struct {
	Mode       string  `json:"mode"`
	ManifestMS float64 `json:"manifest_ms,omitempty"` // manifest request written → response read (mode manifest)
	TTFBMS     float64 `json:"ttfb_ms"`               // blob request written → first body byte
	TotalMS    float64 `json:"total_ms"`              // first request written → first body byte of the blob
	LastByteMS float64 `json:"last_byte_ms"`          // blob request written → last body byte
	Status     int     `json:"status"`
	Bytes      int64   `json:"bytes"`
}

// runTTFB measures one cold blob on one fresh keep-alive connection, dialled
// before the clock starts: by digest, or after a GET of the manifest naming
// it. The clock runs from writing the request to reading the first body
// byte; the rest of the body is read and verified.
func runTTFB(args []string) error {
	fs := flag.NewFlagSet("ttfb", flag.ExitOnError)
	base := fs.String("base", "", "registry base URL (http://127.0.0.1:PORT)")
	repo := fs.String("repo", "", "repository")
	ref := fs.String("ref", "v1", "the manifest's tag (mode manifest)")
	digest := fs.String("digest", "", "the blob's digest")
	size := fs.Int64("size", -1, "the blob's size")
	mode := fs.String("mode", "digest", "digest: GET the blob; manifest: GET the manifest, then the blob")
	ns := fs.String("ns", "", "send ?ns=HOST (mirror style)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	_ = fs.Parse(args)
	if *base == "" || *repo == "" || *digest == "" || (*mode != "digest" && *mode != "manifest") {
		return fmt.Errorf("-base, -repo, -digest and -mode digest|manifest are required")
	}
	u, err := url.Parse(*base)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("-base must be an http:// URL, got %q", *base)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(*timeout))
	br := bufio.NewReaderSize(conn, 256<<10)
	r := ttfbResult{Mode: *mode}
	start := time.Now()
	if *mode == "manifest" {
		resp, err := roundTrip(conn, br, u.Host, manifestURL("", *repo, *ref, *ns), acceptManifests)
		if err != nil {
			return fmt.Errorf("get manifest: %w", err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("read manifest: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("get manifest: status %d: %s", resp.StatusCode, snippet(body))
		}
		if !strings.Contains(string(body), *digest) {
			return fmt.Errorf("manifest does not name %s", *digest)
		}
		r.ManifestMS = ms(time.Since(start))
	}
	t0 := time.Now()
	resp, err := roundTrip(conn, br, u.Host, blobURL("", *repo, *digest, *ns), "*/*")
	if err != nil {
		return fmt.Errorf("get blob: %w", err)
	}
	r.Status = resp.StatusCode
	one := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, one); err != nil {
		return fmt.Errorf("first byte of blob (status %d): %w", resp.StatusCode, err)
	}
	now := time.Now()
	r.TTFBMS, r.TotalMS = ms(now.Sub(t0)), ms(now.Sub(start))
	h := sha256.New()
	h.Write(one)
	n, err := io.CopyBuffer(h, resp.Body, make([]byte, 256<<10))
	r.Bytes = n + 1
	r.LastByteMS = ms(time.Since(t0))
	if err != nil {
		return fmt.Errorf("read blob after %d bytes: %w", r.Bytes, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get blob: status %d", resp.StatusCode)
	}
	if *size >= 0 && r.Bytes != *size {
		return fmt.Errorf("blob of %d bytes, want %d", r.Bytes, *size)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != *digest {
		return fmt.Errorf("blob content digest %s, want %s", got, *digest)
	}
	return emit(r)
}

// roundTrip writes one GET for path (with query) and reads the response head.
func roundTrip(conn net.Conn, br *bufio.Reader, host, path, accept string) (*http.Response, error) {
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: airlock-cachebench\r\nAccept: " + accept + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, err
	}
	return http.ReadResponse(br, nil)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
