package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Runner runs an outside command (nft, ip) with stdin and returns its
// standard output. Tests inject a fake; ExecRunner runs the real one.
type Runner interface {
	Run(ctx context.Context, stdin string, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec; an error carries the command's
// standard error.
type ExecRunner struct{}

var _ Runner = ExecRunner{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, stdin string, name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("%s not found: install it (Debian: apt-get install nftables iproute2)", name)
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %s", name, strings.Join(args, " "), msg)
	}
	return stdout.Bytes(), nil
}

// nft wraps the nft calls node makes.
type nft struct{ r Runner }

// check validates text without changing anything (nft -c -f -).
func (n nft) check(ctx context.Context, text string) error {
	if _, err := n.r.Run(ctx, text, "nft", "-c", "-f", "-"); err != nil {
		return fmt.Errorf("checking the ruleset: %w", err)
	}
	return nil
}

// load applies text in one transaction (nft -f -).
func (n nft) load(ctx context.Context, text string) error {
	if _, err := n.r.Run(ctx, text, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("loading the ruleset: %w", err)
	}
	return nil
}

// list returns airlock's table as nft prints it, and false when it does
// not exist.
func (n nft) list(ctx context.Context) (string, bool) {
	out, err := n.r.Run(ctx, "", "nft", "list", "table", "inet", Table)
	if err != nil {
		return "", false
	}
	return string(out), true
}

// counts returns the number of rules per chain of airlock's live table;
// nil when the table does not exist.
func (n nft) counts(ctx context.Context) (map[string]int, error) {
	out, err := n.r.Run(ctx, "", "nft", "-j", "list", "table", "inet", Table)
	if err != nil {
		return nil, nil
	}
	return parseNftCounts(out)
}

// parseNftCounts counts rules per chain in `nft -j list table` output.
func parseNftCounts(b []byte) (map[string]int, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("reading nft -j output: %w", err)
	}
	m := map[string]int{}
	for _, obj := range doc.Nftables {
		var ref struct {
			Table string `json:"table"`
			Name  string `json:"name"`
			Chain string `json:"chain"`
		}
		if raw, ok := obj["chain"]; ok {
			if json.Unmarshal(raw, &ref) == nil && ref.Table == Table {
				if _, ok := m[ref.Name]; !ok {
					m[ref.Name] = 0
				}
			}
		}
		if raw, ok := obj["rule"]; ok {
			if json.Unmarshal(raw, &ref) == nil && ref.Table == Table {
				m[ref.Chain]++
			}
		}
	}
	return m, nil
}
