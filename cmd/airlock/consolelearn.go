package main

import (
	"bytes"

	"github.com/airlockdev/airlock/internal/admin"
	"github.com/airlockdev/airlock/internal/learn"
)

// learn proposes a policy from the console's recent decision records (GET
// /api/learn), with the running config's learn section and policy, as
// `airlock policy learn --server` would; threshold 0 is the configured one.
func (c *console) learn(lines [][]byte, threshold int) (admin.LearnResult, error) {
	c.mu.Lock()
	cfg := c.next
	c.mu.Unlock()
	opts := learn.Options{Threshold: threshold}
	if cfg != nil {
		opts.Sources, opts.Existing = cfg.Learn.Sources, cfg.Policy
		if threshold == 0 {
			opts.Threshold = cfg.Learn.Threshold
		}
	}
	l := learn.New(opts)
	n := 0
	for _, line := range lines {
		r, err := learn.ParseRecord(line)
		if err != nil {
			continue // ErrSkip, or malformed: the ring holds only decision records as logged
		}
		l.Add(r)
		n++
	}
	p := l.Proposal()
	var buf bytes.Buffer
	if err := p.WriteYAML(&buf); err != nil {
		return admin.LearnResult{}, err
	}
	return admin.LearnResult{YAML: buf.Bytes(), Records: n, Rules: p.Rules()}, nil
}
