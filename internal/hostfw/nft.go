package hostfw

import (
	"context"
	"encoding/json"
	"fmt"
)

// NFT makes the nft calls airlock needs through R.
type NFT struct{ R Runner }

// Check validates text without changing anything (nft -c -f -).
func (n NFT) Check(ctx context.Context, text string) error {
	if _, err := n.R.Run(ctx, text, "nft", "-c", "-f", "-"); err != nil {
		return fmt.Errorf("checking the ruleset: %w", err)
	}
	return nil
}

// Load applies text in one transaction (nft -f -): all of it or nothing.
func (n NFT) Load(ctx context.Context, text string) error {
	if _, err := n.R.Run(ctx, text, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("loading the ruleset: %w", err)
	}
	return nil
}

// List returns table (of family, e.g. "inet") as nft prints it, and false
// when it does not exist.
func (n NFT) List(ctx context.Context, family, table string) (string, bool) {
	out, err := n.R.Run(ctx, "", "nft", "list", "table", family, table)
	if err != nil {
		return "", false
	}
	return string(out), true
}

// Counts returns the number of rules per chain of the live table; nil
// when the table does not exist.
func (n NFT) Counts(ctx context.Context, family, table string) (map[string]int, error) {
	out, err := n.R.Run(ctx, "", "nft", "-j", "list", "table", family, table)
	if err != nil {
		return nil, nil
	}
	return ParseCounts(out, table)
}

// DeleteTable is the text that removes table whether or not it exists:
// declaring it first makes the delete valid on a host without it.
func DeleteTable(family, table string) string {
	return fmt.Sprintf("table %s %s\ndelete table %s %s\n", family, table, family, table)
}

// ParseCounts counts rules per chain of table in `nft -j list table`
// output; a chain without rules counts 0.
func ParseCounts(b []byte, table string) (map[string]int, error) {
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
			if json.Unmarshal(raw, &ref) == nil && ref.Table == table {
				if _, ok := m[ref.Name]; !ok {
					m[ref.Name] = 0
				}
			}
		}
		if raw, ok := obj["rule"]; ok {
			if json.Unmarshal(raw, &ref) == nil && ref.Table == table {
				m[ref.Chain]++
			}
		}
	}
	return m, nil
}
