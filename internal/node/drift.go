package node

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"

	"github.com/airlockdev/airlock/internal/hostfw"
)

// What drifted: the label values of airlock_node_agent_drift_repaired_total.
const (
	DriftRuleset  = "ruleset"  // airlock's nftables table missing, changed or unwanted
	DriftFile     = "file"     // a file apply wrote (hosts.toml, runtime config) changed or removed
	DriftResolver = "resolver" // resolv.conf or the systemd-resolved drop-in changed or removed
	DriftRoute    = "route"    // the default route apply set moved
	DriftState    = "state"    // apply's state file is missing or unreadable
)

// DriftKinds lists every kind of drift, in the order they are checked.
var DriftKinds = []string{DriftRuleset, DriftFile, DriftResolver, DriftRoute, DriftState}

// Drift is one difference between what apply wrote and the node.
type Drift struct {
	What   string // DriftRuleset, DriftFile, …
	Path   string // the file, for file and resolver drift
	Detail string // what is wrong, for logs
}

func (d Drift) String() string { return d.What + ": " + d.Detail }

// attrs are d's log attributes: what, path (for files) and detail.
func (d Drift) attrs() []any {
	if d.Path == "" {
		return []any{"what", d.What, "detail", d.Detail}
	}
	return []any{"what", d.What, "path", d.Path, "detail", d.Detail}
}

// drift compares the node with want, the state a successful apply
// returned, and with listing, the table as nft listed it right after that
// apply (counters zeroed; "" when there is no table). Unlike Status it
// compares the whole listing, not only the rule counts, so a rule
// replaced by another is seen too.
func (n *Node) drift(ctx context.Context, want *State, listing string) ([]Drift, error) {
	var out []Drift
	if st, err := n.loadState(); err != nil {
		out = append(out, Drift{What: DriftState, Detail: err.Error()})
	} else if st == nil {
		out = append(out, Drift{What: DriftState, Detail: fmt.Sprintf("%s is missing (airlock node reset ran, or it was deleted)", StateDir+"/state.json")})
	}

	nf := hostfw.NFT{R: n.run}
	live, err := nf.Counts(ctx, "inet", Table)
	if err != nil {
		return nil, err
	}
	switch {
	case want.Table && live == nil:
		out = append(out, Drift{What: DriftRuleset, Detail: fmt.Sprintf("table inet %s is missing", Table)})
	case want.Table && !maps.Equal(live, want.RuleCounts):
		out = append(out, Drift{What: DriftRuleset, Detail: fmt.Sprintf("table inet %s has %s, apply loaded %s", Table, countsDetail(live), countsDetail(want.RuleCounts))})
	case want.Table:
		if cur, ok := liveTable(ctx, nf); !ok {
			out = append(out, Drift{What: DriftRuleset, Detail: fmt.Sprintf("table inet %s is missing", Table)})
		} else if cur != listing {
			out = append(out, Drift{What: DriftRuleset, Detail: fmt.Sprintf("table inet %s has the rule counts apply loaded but other rules", Table)})
		}
	case live != nil:
		out = append(out, Drift{What: DriftRuleset, Detail: fmt.Sprintf("table inet %s is installed although outboundType %s has no packet rules", Table, want.OutboundType)})
	}

	for _, f := range want.Files {
		what := DriftFile
		if f.Role == "resolv.conf" || f.Role == "systemd-resolved drop-in" {
			what = DriftResolver
		}
		b, exists, err := readFile(n.under(f.Path))
		switch {
		case err != nil:
			out = append(out, Drift{What: what, Path: f.Path, Detail: fmt.Sprintf("%s (%s): %v", f.Path, f.Role, err)})
		case !exists:
			out = append(out, Drift{What: what, Path: f.Path, Detail: fmt.Sprintf("%s (%s) is missing", f.Path, f.Role)})
		case sum([]byte(b)) != f.SHA256:
			out = append(out, Drift{What: what, Path: f.Path, Detail: fmt.Sprintf("%s (%s) changed since apply", f.Path, f.Role)})
		}
	}

	if want.Route != nil {
		cur, err := n.defaultRoute(ctx, want.Route.Family)
		if err != nil {
			return nil, err
		}
		if cur == nil || cur.Gateway != want.Route.Gateway {
			out = append(out, Drift{What: DriftRoute, Detail: fmt.Sprintf("default route is %s, apply set via %s", routeText(cur), want.Route.Gateway)})
		}
	}
	return out, nil
}

var nftCounters = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// liveTable is airlock's table as nft lists it, counters zeroed; false
// when it is missing.
func liveTable(ctx context.Context, nf hostfw.NFT) (string, bool) {
	out, ok := nf.List(ctx, "inet", Table)
	if !ok {
		return "", false
	}
	return nftCounters.ReplaceAllString(out, "counter packets 0 bytes 0"), true
}

// reloadRuleset loads p's ruleset again (checked first): one nft
// transaction that replaces the table, for a table whose rules changed
// while their counts did not (Apply reloads only on a count or ruleset
// change).
func (n *Node) reloadRuleset(ctx context.Context, p *Plan) error {
	nf := hostfw.NFT{R: n.run}
	if err := nf.Check(ctx, p.Ruleset); err != nil {
		return err
	}
	return nf.Load(ctx, p.Ruleset)
}

// restoreState writes st back as the state file when the file is missing
// and every backup st names is still there: the state file alone was
// lost, and apply keeps its record of what airlock wrote (without it, a
// file already as apply wants it would no longer be airlock's, and reset
// would leave it). After airlock node reset the backups are gone too:
// then nothing is written and the next apply starts afresh, backing up
// the restored files again. It reports whether it wrote the state.
func (n *Node) restoreState(st *State) (bool, error) {
	if cur, err := n.loadState(); err != nil || cur != nil {
		return false, err
	}
	for _, f := range st.Files {
		if f.Backup == "" {
			continue
		}
		if _, err := os.Lstat(n.under(f.Backup)); err != nil {
			return false, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(n.statePath()), 0o755); err != nil {
		return false, err
	}
	if err := n.writeAtomic(n.statePath(), marshalState(st), defaultMeta); err != nil {
		return false, fmt.Errorf("restoring node state: %w", err)
	}
	return true, nil
}
