package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func rec(t *testing.T, round int, phase, target, mode string, data any, up *upstreamLoad) record {
	t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return record{Round: round, Phase: phase, Target: target, Mode: mode, Data: b, Upstream: up}
}

func load(gets map[string]int) *upstreamLoad {
	u := &upstreamLoad{GETsPerBlob: gets}
	for _, n := range gets {
		u.BlobGETs += n
		u.MaxGETsPerBlb = max(u.MaxGETsPerBlb, n)
	}
	return u
}

func TestChecks(t *testing.T) {
	o := reportOpts{clients: 20, blobs: 2, upstreamTimeout: 10}
	var recs []record
	for round := 1; round <= 3; round++ {
		recs = append(recs,
			rec(t, round, "pull1", "direct", "", pullResult{Clients: 1, WallSeconds: 1}, nil),
			rec(t, round, "pull1", "airlock", "", pullResult{Clients: 1, WallSeconds: 1.05}, load(map[string]int{"a": 1, "b": 1})),
			rec(t, round, "pull1", "docker-registry", "", pullResult{Clients: 1, WallSeconds: 2}, load(map[string]int{"a": 2, "b": 1})),
			rec(t, round, "ttfb", "direct", "digest", ttfbResult{TTFBMS: 4}, nil),
			rec(t, round, "ttfb", "airlock", "digest", ttfbResult{TTFBMS: 12}, load(map[string]int{"a": 1})),         // bar 13
			rec(t, round, "ttfb", "docker-registry", "digest", ttfbResult{TTFBMS: 14}, load(map[string]int{"a": 1})), // over
			rec(t, round, "warm_up", "airlock", "", pullResult{WallSeconds: 0.2}, nil),
			rec(t, round, "warm_down", "airlock", "", pullResult{WallSeconds: 1.2}, nil),
			rec(t, round, "warm_up", "docker-registry", "", pullResult{WallSeconds: 0.2}, nil),
			rec(t, round, "warm_down", "docker-registry", "", pullResult{WallSeconds: 0.21}, nil),
			rec(t, round, "miss_tag", "airlock", "", probeResult{Status: 503, Seconds: 1, Body: "upstream x is unreachable"}, nil),
			rec(t, round, "miss_tag", "docker-registry", "", probeResult{Status: 404, Seconds: 0.002, Body: "manifest unknown"}, nil),
		)
	}
	res := index(recs)
	tests := []struct {
		name       string
		got        check
		wantOK     bool
		wantFigure string
	}{
		{"gets airlock", res.getsPerBlob("airlock", "pull1", o), true, "2 GETs for 2 blobs; worst 1"},
		{"gets docker-registry", res.getsPerBlob("docker-registry", "pull1", o), false, "worst 2"},
		{"gets not measured", res.getsPerBlob("airlock", "pullN", o), false, "not measured"},
		{"ttfb airlock", res.ttfbCheck("airlock", "digest"), true, "12.0 ms vs bar 13.0 ms (within in 3 of 3 rounds)"},
		{"ttfb docker-registry", res.ttfbCheck("docker-registry", "digest"), false, "within in 0 of 3"},
		{"pull ratio airlock", res.pullRatio("airlock", "pull1", 1.1), true, "1.05×"},
		{"pull ratio docker-registry", res.pullRatio("docker-registry", "pull1", 1.1), false, "2.00×"},
		{"down airlock", res.downRatio("airlock", "warm_down"), false, "6.00×"},
		{"down docker-registry", res.downRatio("docker-registry", "warm_down"), true, "1.05×"},
		{"miss airlock", res.missCheck("airlock", o), true, "status 503"},
		{"miss docker-registry", res.missCheck("docker-registry", o), false, "status 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got.ok != tt.wantOK || !strings.Contains(tt.got.figure, tt.wantFigure) {
				t.Errorf("check = %+v, want ok %v and a figure containing %q", tt.got, tt.wantOK, tt.wantFigure)
			}
		})
	}
}

func TestWriteReport(t *testing.T) {
	recs := []record{
		rec(t, 1, "pull1", "direct", "", pullResult{Clients: 1, WallSeconds: 1}, nil),
		rec(t, 1, "pull1", "airlock", "", pullResult{Clients: 1, WallSeconds: 3, Errors: 1, FirstError: "get blob | x"}, load(map[string]int{"a": 1})),
	}
	var b strings.Builder
	writeReport(&b, recs, reportOpts{clients: 20, blobs: 1, image: "img", big: "1 MiB"})
	out := b.String()
	for _, want := range []string{"| 1 | 1 | airlock | 3.000 | 3.00 |", `get blob \| x`, "#### Targets", "| cold pull, 1 client ≤ 1.1× direct (ratio, range) | 3.00× (3.00–3.00) | **misses** |"} {
		if !strings.Contains(out, want) {
			t.Errorf("writeReport: output lacks %q:\n%s", want, out)
		}
	}
}
