// Package logcap captures a server's slog output as JSON records for
// tests to assert on. Only tests import it.
//
// A Capture is an io.Writer behind slog's JSON handler: Logger returns the
// logger to inject, Records parses what was logged so far. It is safe for
// concurrent use: servers log from many goroutines while the test reads.
package logcap

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// Capture collects JSON log lines and returns the records whose msg is
// the one it was made for.
type Capture struct {
	msg string // "" keeps every record

	mu  sync.Mutex
	buf bytes.Buffer
}

// New returns a Capture of the records logged with message msg (every
// record when msg is "").
func New(msg string) *Capture { return &Capture{msg: msg} }

// Logger returns a logger writing JSON records into c.
func (c *Capture) Logger() *slog.Logger { return slog.New(slog.NewJSONHandler(c, nil)) }

// Write appends one or more JSON lines; slog's handler calls it.
func (c *Capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

// String returns everything logged so far, every message included.
func (c *Capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// Records returns the records with c's message logged so far, in order.
// A line that is not JSON fails the test.
func (c *Capture) Records(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(c.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if c.msg == "" || m["msg"] == c.msg {
			out = append(out, m)
		}
	}
	return out
}

// Wait waits up to 5 s until at least n records with c's message were
// logged and fails the test, with the whole log, unless there are then
// exactly n.
func (c *Capture) Wait(t testing.TB, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := c.Records(t)
		if len(r) >= n || time.Now().After(deadline) {
			if len(r) != n {
				t.Fatalf("%q records = %d, want %d:\n%s", c.msg, len(r), n, c.String())
			}
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Reset forgets everything logged so far.
func (c *Capture) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Reset()
}
