package node

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/airlockdev/airlock/internal/hostfw"
)

// Reset undoes apply: it restores every backed-up file, removes the files
// airlock created, deletes airlock's table, restores the default route and
// removes the state. It works after outside changes (a flushed ruleset, a
// deleted file) and keeps going past a failed step, reporting every
// failure; the state stays until every step succeeded, so reset can be
// run again. It returns one line per change.
func (n *Node) Reset(ctx context.Context) ([]string, error) {
	st, err := n.loadState()
	if err != nil {
		return nil, err
	}
	var changes []string
	var errs []error
	nf := hostfw.NFT{R: n.run}
	if _, ok := nf.List(ctx, "inet", Table); ok {
		if err := nf.Load(ctx, hostfw.DeleteTable("inet", Table)); err != nil {
			errs = append(errs, err)
		} else {
			changes = append(changes, fmt.Sprintf("removed table inet %s", Table))
		}
	}
	if st == nil {
		if len(errs) == 0 {
			return changes, nil
		}
		return changes, errors.Join(errs...)
	}
	for i := len(st.Files) - 1; i >= 0; i-- {
		r := st.Files[i]
		if err := n.restore(r); err != nil {
			errs = append(errs, err)
			continue
		}
		changes = append(changes, restoredText(r))
	}
	if st.Route != nil {
		if err := n.setRoute(ctx, st.Route.Family, st.Route.Previous); err != nil {
			errs = append(errs, err)
		} else {
			changes = append(changes, fmt.Sprintf("restored the default route (%s)", routeText(st.Route.Previous)))
		}
	}
	if len(errs) > 0 {
		return changes, fmt.Errorf("%w (the state is kept: fix the cause and run airlock node reset again)", errors.Join(errs...))
	}
	if err := os.RemoveAll(n.under(StateDir)); err != nil {
		return changes, fmt.Errorf("removing node state: %w", err)
	}
	n.removeEmptyDirs(st.CreatedDirs, true)
	return changes, nil
}
