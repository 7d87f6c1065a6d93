package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// upstreamLoad is what an upstream served, from its access log.
type upstreamLoad struct {
	Requests      int            `json:"requests"`
	Pings         int            `json:"pings"` // GET /v2/
	ManifestGETs  int            `json:"manifest_gets"`
	ManifestHEADs int            `json:"manifest_heads"`
	BlobGETs      int            `json:"blob_gets"`
	BlobHEADs     int            `json:"blob_heads"`
	Other         int            `json:"other"`
	Bytes         int64          `json:"bytes"`      // response bodies, all requests
	BlobBytes     int64          `json:"blob_bytes"` // response bodies of blob GETs
	GETsPerBlob   map[string]int `json:"gets_per_blob"`
	MaxGETsPerBlb int            `json:"max_gets_per_blob"`
	Statuses      map[string]int `json:"statuses"`
}

// accessEntry is one request of a combined-format access log line:
// 127.0.0.1 - - [date] "GET /v2/x/blobs/sha256:… HTTP/1.1" 200 1234 "" "agent"
type accessEntry struct {
	Method, Path string
	Status       int
	Size         int64
}

// parseAccessLine parses one combined-format line; ok is false for lines
// that are not access log entries.
func parseAccessLine(line string) (accessEntry, bool) {
	_, rest, ok := strings.Cut(line, "] \"")
	if !ok {
		return accessEntry{}, false
	}
	reqLine, rest, ok := strings.Cut(rest, "\" ")
	if !ok {
		return accessEntry{}, false
	}
	f := strings.Fields(reqLine)
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/") {
		return accessEntry{}, false
	}
	g := strings.Fields(rest)
	if len(g) < 2 {
		return accessEntry{}, false
	}
	status, err := strconv.Atoi(g[0])
	if err != nil || status < 100 || status > 999 {
		return accessEntry{}, false
	}
	var size int64
	if g[1] != "-" {
		if size, err = strconv.ParseInt(g[1], 10, 64); err != nil || size < 0 {
			return accessEntry{}, false
		}
	}
	return accessEntry{Method: f[0], Path: f[1], Status: status, Size: size}, true
}

// add classifies e by its path under /v2/.
func (u *upstreamLoad) add(e accessEntry) {
	u.Requests++
	u.Bytes += e.Size
	u.Statuses[strconv.Itoa(e.Status)]++
	p, _, _ := strings.Cut(e.Path, "?")
	get, head := e.Method == "GET", e.Method == "HEAD"
	switch {
	case p == "/v2/" || p == "/v2":
		u.Pings++
	case strings.Contains(p, "/blobs/uploads"):
		u.Other++
	case strings.Contains(p, "/blobs/") && get:
		u.BlobGETs++
		u.BlobBytes += e.Size
		d := p[strings.LastIndexByte(p, '/')+1:]
		u.GETsPerBlob[d]++
		u.MaxGETsPerBlb = max(u.MaxGETsPerBlb, u.GETsPerBlob[d])
	case strings.Contains(p, "/blobs/") && head:
		u.BlobHEADs++
	case strings.Contains(p, "/manifests/") && get:
		u.ManifestGETs++
	case strings.Contains(p, "/manifests/") && head:
		u.ManifestHEADs++
	default:
		u.Other++
	}
}

func readAccessLog(r io.Reader) (upstreamLoad, error) {
	u := upstreamLoad{GETsPerBlob: map[string]int{}, Statuses: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if e, ok := parseAccessLine(sc.Text()); ok {
			u.add(e)
		}
	}
	return u, sc.Err()
}

func runAccessLog(args []string) error {
	fs := flag.NewFlagSet("accesslog", flag.ExitOnError)
	file := fs.String("file", "", "docker-registry's stdout (combined access log)")
	offset := fs.Int64("offset", 0, "start reading at this byte offset")
	_ = fs.Parse(args)
	f, err := os.Open(*file)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(*offset, io.SeekStart); err != nil {
		return fmt.Errorf("seek %s: %w", *file, err)
	}
	u, err := readAccessLog(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", *file, err)
	}
	return emit(u)
}
