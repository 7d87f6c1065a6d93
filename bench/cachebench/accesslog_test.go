package main

import (
	"strings"
	"testing"
)

func TestParseAccessLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want accessEntry
		ok   bool
	}{
		{
			name: "blob get",
			line: `127.0.0.1 - - [21/Nov/2026:07:29:56 +0000] "GET /v2/bench/img/blobs/sha256:ab HTTP/1.1" 200 67108864 "" "Go-http-client/1.1"`,
			want: accessEntry{Method: "GET", Path: "/v2/bench/img/blobs/sha256:ab", Status: 200, Size: 67108864},
			ok:   true,
		},
		{
			name: "dash size",
			line: `127.0.0.1 - - [21/Nov/2026:07:29:56 +0000] "HEAD /v2/ HTTP/1.1" 200 - "" "x"`,
			want: accessEntry{Method: "HEAD", Path: "/v2/", Status: 200},
			ok:   true,
		},
		{name: "app log", line: `time="2026-11-21T07:29:56Z" level=warning msg="No HTTP secret provided"`},
		{name: "bad status", line: `h - - [d] "GET /v2/ HTTP/1.1" abc 2 "" ""`},
		{name: "negative size", line: `h - - [d] "GET /v2/ HTTP/1.1" 200 -5 "" ""`},
		{name: "empty", line: ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseAccessLine(tt.line)
			if ok != tt.ok || got != tt.want {
				t.Errorf("parseAccessLine(%q) = %+v, %v, want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestReadAccessLog(t *testing.T) {
	log := strings.Join([]string{
		`127.0.0.1 - - [d] "GET /v2/ HTTP/1.1" 200 2 "" "a"`,
		`127.0.0.1 - - [d] "HEAD /v2/r/manifests/v1 HTTP/1.1" 200 0 "" "a"`,
		`127.0.0.1 - - [d] "GET /v2/r/manifests/v1 HTTP/1.1" 200 500 "" "a"`,
		`127.0.0.1 - - [d] "HEAD /v2/r/blobs/sha256:1 HTTP/1.1" 200 0 "" "a"`,
		`127.0.0.1 - - [d] "GET /v2/r/blobs/sha256:1 HTTP/1.1" 200 100 "" "a"`,
		`127.0.0.1 - - [d] "GET /v2/r/blobs/sha256:1?ns=x HTTP/1.1" 200 100 "" "a"`,
		`127.0.0.1 - - [d] "GET /v2/r/blobs/sha256:2 HTTP/1.1" 404 20 "" "a"`,
		`127.0.0.1 - - [d] "POST /v2/r/blobs/uploads/ HTTP/1.1" 202 0 "" "a"`,
		`time="x" level=info msg="not an access line"`,
	}, "\n")
	u, err := readAccessLog(strings.NewReader(log))
	if err != nil {
		t.Fatalf("readAccessLog: %v", err)
	}
	checks := []struct {
		name      string
		got, want int64
	}{
		{"requests", int64(u.Requests), 8},
		{"pings", int64(u.Pings), 1},
		{"manifest HEADs", int64(u.ManifestHEADs), 1},
		{"manifest GETs", int64(u.ManifestGETs), 1},
		{"blob HEADs", int64(u.BlobHEADs), 1},
		{"blob GETs", int64(u.BlobGETs), 3},
		{"other", int64(u.Other), 1},
		{"bytes", u.Bytes, 722},
		{"blob bytes", u.BlobBytes, 220},
		{"max GETs per blob", int64(u.MaxGETsPerBlb), 2},
		{"GETs of sha256:1", int64(u.GETsPerBlob["sha256:1"]), 2},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("readAccessLog: %s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func FuzzParseAccessLine(f *testing.F) {
	f.Add(`127.0.0.1 - - [21/Nov/2026:07:29:56 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"`)
	f.Add(`x] "GET a HTTP/1.1" 200 -`)
	f.Add(`] "" `)
	f.Fuzz(func(t *testing.T, line string) {
		e, ok := parseAccessLine(line)
		if !ok {
			return
		}
		if e.Size < 0 || e.Status < 100 || e.Status > 999 || e.Method == "" {
			t.Errorf("parseAccessLine(%q) = %+v, accepted an impossible entry", line, e)
		}
		u := upstreamLoad{GETsPerBlob: map[string]int{}, Statuses: map[string]int{}}
		u.add(e)
		if u.Requests != 1 {
			t.Errorf("add(%+v): requests = %d, want 1", e, u.Requests)
		}
	})
}
