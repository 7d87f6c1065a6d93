package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
)

// routeChange is a change of the default route and how to undo it.
type routeChange struct {
	text string
	do   func(context.Context) error
	undo func(context.Context) error
}

// defaultRoute reads the default route of family fam ("4" or "6"); nil
// when there is none.
func (n *Node) defaultRoute(ctx context.Context, fam string) (*Route, error) {
	out, err := n.run.Run(ctx, "", "ip", "-"+fam, "-j", "route", "show", "default")
	if err != nil {
		return nil, fmt.Errorf("reading the default route: %w", err)
	}
	var rs []Route
	if len(out) > 0 {
		if err := json.Unmarshal(out, &rs); err != nil {
			return nil, fmt.Errorf("reading ip -j route output: %w", err)
		}
	}
	if len(rs) == 0 {
		return nil, nil
	}
	return &rs[0], nil
}

// setRoute makes r (nil: none) the default route of family fam.
func (n *Node) setRoute(ctx context.Context, fam string, r *Route) error {
	args := []string{"-" + fam, "route"}
	switch {
	case r == nil:
		args = append(args, "del", "default")
		n.run.Run(ctx, "", "ip", args...) // none there is fine
		return nil
	case r.Gateway != "":
		args = append(args, "replace", "default", "via", r.Gateway)
		if r.Dev != "" {
			args = append(args, "dev", r.Dev)
		}
	default:
		args = append(args, "replace", "default", "dev", r.Dev)
	}
	if r.Metric != 0 {
		args = append(args, "metric", strconv.Itoa(r.Metric))
	}
	if _, err := n.run.Run(ctx, "", "ip", args...); err != nil {
		return fmt.Errorf("setting the default route: %w (node.gateway must be an address on a network this host is connected to)", err)
	}
	return nil
}

// planRoute decides the default route change apply makes, and sets
// next.Route; nil when the route stays as it is.
func (n *Node) planRoute(ctx context.Context, prev, next *State, p *Plan) (*routeChange, error) {
	if p.route == nil {
		if prev.Route == nil {
			return nil, nil
		}
		pr := prev.Route
		return &routeChange{
			text: fmt.Sprintf("restored the default route (%s)", routeText(pr.Previous)),
			do:   func(ctx context.Context) error { return n.setRoute(ctx, pr.Family, pr.Previous) },
			undo: func(ctx context.Context) error { return n.setRoute(ctx, pr.Family, &Route{Gateway: pr.Gateway}) },
		}, nil
	}
	gw := *p.route
	fam := "4"
	if gw.Is6() {
		fam = "6"
	}
	cur, err := n.defaultRoute(ctx, fam)
	if err != nil {
		return nil, err
	}
	rec := &RouteRecord{Family: fam, Gateway: gw.String(), Previous: cur}
	if prev.Route != nil && prev.Route.Family == fam {
		rec.Previous = prev.Route.Previous // keep the route from before airlock
	}
	next.Route = rec
	if cur != nil && cur.Gateway == gw.String() {
		return nil, nil
	}
	return &routeChange{
		text: fmt.Sprintf("default route via %s (was %s)", gw, routeText(cur)),
		do:   func(ctx context.Context) error { return n.setRoute(ctx, fam, &Route{Gateway: gw.String()}) },
		undo: func(ctx context.Context) error { return n.setRoute(ctx, fam, cur) },
	}, nil
}

func routeText(r *Route) string {
	switch {
	case r == nil:
		return "none"
	case r.Gateway != "":
		return "via " + r.Gateway
	default:
		return "dev " + r.Dev
	}
}
