package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/airlockdev/airlock/internal/hostfw"
)

// Result is what apply did.
type Result struct {
	Plan *Plan
	// Changes has one line per change made; empty means no change.
	Changes []string
	State   *State
}

// Plan computes what apply would do for in, reading files under root
// only. It is what --dry-run prints.
func (n *Node) Plan(in Input) (*Plan, error) { return n.plan(in) }

// fileOp is one file apply writes.
type fileOp struct {
	want      wantFile
	rec       FileRecord
	cur       string // content before (when exists)
	exists    bool
	link      string   // symlink target before, "" when not a symlink
	meta      fileMeta // mode and owner before (of the symlink itself when link is set)
	newBackup bool     // first change: back up cur
	tmp       string
}

// Apply makes the node match in. Every file is staged (a temporary file
// next to it) and the ruleset checked with `nft -c` before anything
// changes; then the firewall is loaded in one transaction, the files are
// renamed into place, the route is set and the state saved. If a step
// fails, what was done is undone, so the node keeps its previous state.
// It makes no network calls: the registry and DNS need not be up.
func (n *Node) Apply(ctx context.Context, in Input) (*Result, error) {
	prev, err := n.loadState()
	if err != nil {
		return nil, err
	}
	if prev == nil {
		prev = &State{}
	}
	p, err := n.plan(in)
	if err != nil {
		return nil, err
	}
	c := in.Config
	next := &State{
		Version: stateVersion, OutboundType: c.OutboundType, ArtifactSource: c.ArtifactSource,
		Resolver: p.Resolver, Registry: c.Registry.String(), Gateway: c.Gateway.String(), DNS: c.DNS.String(),
		Mirrors: p.Mirrors, CertsDir: p.CertsDir, CreatedDirs: prev.CreatedDirs, Runtimes: p.Runtimes,
		Table: p.Counts != nil, RuleCounts: p.Counts, RulesetSHA256: sum([]byte(p.Ruleset)),
	}
	tx := &txn{n: n}

	// Files wanted.
	wanted := map[string]bool{}
	var ops []*fileOp
	for _, w := range p.files {
		wanted[w.path] = true
		op, err := n.fileOp(prev, w)
		if err != nil {
			return nil, err
		}
		next.Files = append(next.Files, op.rec)
		if op.rec.SHA256 == "" { // unchanged and not airlock's: not recorded
			next.Files = next.Files[:len(next.Files)-1]
		}
		if op.tmp == "pending" {
			ops = append(ops, op)
		}
	}
	// Files airlock wrote before that are no longer wanted.
	var removals []FileRecord
	for _, r := range prev.Files {
		if !wanted[r.Path] {
			removals = append(removals, r)
		}
	}

	// Firewall: reload when the ruleset changed or the live table drifted.
	nf := hostfw.NFT{R: n.run}
	live, err := nf.Counts(ctx, "inet", Table)
	if err != nil {
		return nil, err
	}
	fwChange := false
	if next.Table {
		fwChange = prev.RulesetSHA256 != next.RulesetSHA256 || !maps.Equal(live, next.RuleCounts)
	} else {
		fwChange = live != nil
	}

	// Route (userDefinedRouting).
	rt, err := n.planRoute(ctx, prev, next, p)
	if err != nil {
		return nil, err
	}

	res := &Result{Plan: p, State: next}
	if len(ops) == 0 && len(removals) == 0 && !fwChange && rt == nil {
		if string(marshalState(prev)) != string(marshalState(next)) {
			if err := n.writeAtomic(n.statePath(), marshalState(next), defaultMeta); err != nil {
				return nil, fmt.Errorf("saving node state: %w", err)
			}
		}
		return res, nil
	}

	// Stage: directories, temporary files, backups, ruleset check.
	err = tx.mkdirAll(filepath.Dir(n.statePath()))
	if err == nil {
		err = tx.stage(ops)
	}
	next.CreatedDirs = append(slices.Clone(prev.CreatedDirs), n.onNode(tx.dirs)...)
	if err != nil {
		tx.rollback()
		return nil, fmt.Errorf("staging files (nothing was changed): %w", err)
	}
	if fwChange {
		if err := nf.Check(ctx, p.Ruleset); err != nil {
			tx.rollback()
			return nil, fmt.Errorf("%w (nothing was changed)", err)
		}
	}

	// Commit.
	commit := func() error {
		if fwChange {
			before, existed := nf.List(ctx, "inet", Table)
			if err := nf.Load(ctx, p.Ruleset); err != nil {
				return err
			}
			tx.undo = append(tx.undo, func() error {
				restore := hostfw.DeleteTable("inet", Table)
				if existed {
					restore += before
				}
				return nf.Load(context.WithoutCancel(ctx), restore)
			})
			if next.Table {
				res.Changes = append(res.Changes, fmt.Sprintf("loaded table inet %s (%s)", Table, countsText(next.RuleCounts)))
			} else {
				res.Changes = append(res.Changes, fmt.Sprintf("removed table inet %s", Table))
			}
		}
		for _, op := range ops {
			if err := tx.commitFile(op); err != nil {
				return err
			}
			res.Changes = append(res.Changes, fmt.Sprintf("wrote %s (%s)", op.want.path, op.want.role))
		}
		for _, r := range removals {
			if err := tx.restoreFile(r); err != nil {
				return err
			}
			res.Changes = append(res.Changes, restoredText(r))
		}
		next.CreatedDirs = n.removeEmptyDirs(next.CreatedDirs, false)
		if rt != nil {
			if err := rt.do(ctx); err != nil {
				return err
			}
			tx.undo = append(tx.undo, func() error { return rt.undo(context.WithoutCancel(ctx)) })
			res.Changes = append(res.Changes, rt.text)
		}
		if err := n.writeAtomic(n.statePath(), marshalState(next), defaultMeta); err != nil {
			return fmt.Errorf("saving node state: %w", err)
		}
		return nil
	}
	if err := commit(); err != nil {
		if rerr := tx.rollback(); rerr != nil {
			return nil, fmt.Errorf("%w; rolling back also failed: %v (run airlock node status to see what is applied)", err, rerr)
		}
		return nil, fmt.Errorf("%w (rolled back: the node keeps its previous configuration)", err)
	}
	tx.cleanup()
	return res, nil
}

// fileOp decides what to do with one wanted file. op.tmp is "pending"
// when the file must be written; op.rec.SHA256 is empty when the file is
// left alone and is not airlock's.
func (n *Node) fileOp(prev *State, w wantFile) (*fileOp, error) {
	full := n.under(w.path)
	op := &fileOp{want: w}
	if fi, err := os.Lstat(full); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		op.link, _ = os.Readlink(full)
	}
	if m, err := metaOf(full); err == nil {
		op.meta = m
	}
	cur, exists, err := readFile(full)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", w.path, err)
	}
	op.cur, op.exists = cur, exists
	rec, had := prev.file(w.path)
	if exists && op.link == "" && cur == w.content {
		if had {
			op.rec = rec
		}
		return op, nil
	}
	if !had {
		rec = FileRecord{Path: w.path, Created: !exists && op.link == ""}
		switch {
		case op.link != "":
			rec.LinkTarget, rec.Owner = op.link, op.meta.owner
		case exists:
			rec.Backup = StateDir + "/backup" + w.path
			rec.Mode, rec.Owner = op.meta.mode, op.meta.owner
			op.newBackup = true
		}
	}
	rec.Role = w.role
	rec.SHA256 = sum([]byte(w.content))
	op.rec = rec
	op.tmp = "pending"
	return op, nil
}

func countsText(m map[string]int) string {
	total := 0
	for _, k := range slices.Sorted(maps.Keys(m)) {
		total += m[k]
	}
	return fmt.Sprintf("%d rules", total)
}

func restoredText(r FileRecord) string {
	switch {
	case r.Created:
		return fmt.Sprintf("removed %s (%s)", r.Path, r.Role)
	case r.LinkTarget != "":
		return fmt.Sprintf("restored %s (symlink to %s)", r.Path, r.LinkTarget)
	default:
		return fmt.Sprintf("restored %s from its backup", r.Path)
	}
}

// onNode maps paths under root back to paths on the node.
func (n *Node) onNode(paths []string) []string {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		rel, err := filepath.Rel(n.root, p)
		if err == nil {
			out = append(out, "/"+filepath.ToSlash(rel))
		}
	}
	return out
}

// removeEmptyDirs removes the directories of dirs (on the node) that are
// empty, deepest first, except the state directory's unless all is set;
// it returns those that remain.
func (n *Node) removeEmptyDirs(dirs []string, all bool) []string {
	sorted := slices.Clone(dirs)
	slices.SortFunc(sorted, func(a, b string) int { return len(b) - len(a) })
	var kept []string
	for _, d := range sorted {
		if !all && strings.HasPrefix(StateDir+"/", d+"/") {
			kept = append(kept, d)
			continue
		}
		if err := os.Remove(n.under(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			kept = append(kept, d)
		}
	}
	slices.Sort(kept)
	return slices.Compact(kept)
}
