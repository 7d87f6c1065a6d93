package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

type probeResult struct {
	Status  int     `json:"status"` // 0: no response
	Seconds float64 `json:"seconds"`
	Body    string  `json:"body,omitempty"` // the first 300 characters
	Error   string  `json:"error,omitempty"`
}

// runProbe sends one GET and reports how it was answered and how fast:
// what a client sees on a cold miss with the upstream down.
func runProbe(args []string) error {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	u := fs.String("url", "", "URL to GET")
	accept := fs.String("accept", acceptManifests, "Accept header")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	_ = fs.Parse(args)
	if *u == "" {
		return fmt.Errorf("-url is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", *accept)
	var r probeResult
	start := time.Now()
	resp, err := newClient().Do(req)
	if err == nil {
		r.Status = resp.StatusCode
		var b []byte
		b, err = io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		r.Body = snippet(b)
	}
	r.Seconds = time.Since(start).Seconds()
	if err != nil {
		r.Error = err.Error()
	}
	return emit(r)
}
