package egress

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/airlockdev/airlock/internal/hostfw"
)

// InstallRules installs the gateway host's interception for in, as
// `airlock node apply` installs a node's: the ruleset is checked with
// `nft -c` before anything changes; then, when in.L4Port is set, the
// policy routing TPROXY needs (routingFor) is added, and last the table is
// loaded in one `nft -f` transaction. If a step fails, the routing rules
// and routes it added are removed again, so the host keeps its previous
// table and routing. Rules and routes that were already there are left
// alone. Installing the same input twice changes nothing the second time.
func InstallRules(ctx context.Context, run hostfw.Runner, in RulesInput) error {
	nf := hostfw.NFT{R: run}
	text := Ruleset(in)
	if err := nf.Check(ctx, text); err != nil {
		return fmt.Errorf("%w (needs root and the nftables package; nothing was changed)", err)
	}
	var undo []func(context.Context) error
	fail := func(err error) error {
		var errs []string
		for i := len(undo) - 1; i >= 0; i-- {
			if uerr := undo[i](context.WithoutCancel(ctx)); uerr != nil {
				errs = append(errs, uerr.Error())
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w; rolling back also failed: %s", err, strings.Join(errs, "; "))
		}
		return fmt.Errorf("%w (rolled back: the gateway host keeps its previous rules and routing)", err)
	}
	if in.L4Port != 0 {
		for _, st := range routingFor() {
			u, err := st.ensure(ctx, run)
			if err != nil {
				return fail(err)
			}
			if u != nil {
				undo = append(undo, u)
			}
		}
	}
	if err := nf.Load(ctx, text); err != nil {
		return fail(err)
	}
	return nil
}

// routeStep is one piece of TPROXY's policy routing: ensure adds it when
// it is missing and returns how to remove it again (nil when it was
// already there).
type routeStep struct {
	ensure func(context.Context, hostfw.Runner) (undo func(context.Context) error, err error)
}

// routingFor is the policy routing TPROXY needs, IPv4 and IPv6: packets
// marked RulesMark look up table RulesTableID, whose default route is
// local (delivered to the L4 listener's socket).
func routingFor() []routeStep {
	mark, table := fmt.Sprintf("0x%x", RulesMark), strconv.Itoa(RulesTableID)
	var steps []routeStep
	for _, fam := range []struct{ flag, dst string }{{"-4", "0.0.0.0/0"}, {"-6", "::/0"}} {
		rule := []string{"fwmark", mark, "lookup", table}
		route := []string{"local", fam.dst, "dev", "lo", "table", table}
		steps = append(steps, routeStep{ensure: func(ctx context.Context, run hostfw.Runner) (func(context.Context) error, error) {
			out, err := run.Run(ctx, "", "ip", append([]string{fam.flag, "rule", "show"}, rule...)...)
			if err != nil {
				return nil, fmt.Errorf("reading the policy routing rules: %w", err)
			}
			if strings.TrimSpace(string(out)) != "" {
				return nil, nil
			}
			if _, err := run.Run(ctx, "", "ip", append([]string{fam.flag, "rule", "add"}, rule...)...); err != nil {
				return nil, fmt.Errorf("adding the policy routing rule: %w", err)
			}
			return func(ctx context.Context) error {
				_, err := run.Run(ctx, "", "ip", append([]string{fam.flag, "rule", "del"}, rule...)...)
				return err
			}, nil
		}}, routeStep{ensure: func(ctx context.Context, run hostfw.Runner) (func(context.Context) error, error) {
			prev, err := tableDefault(ctx, run, fam.flag, table)
			if err != nil {
				return nil, err
			}
			if prev != nil && prev.Type == "local" && prev.Dev == "lo" {
				return nil, nil
			}
			if _, err := run.Run(ctx, "", "ip", append([]string{fam.flag, "route", "replace"}, route...)...); err != nil {
				return nil, fmt.Errorf("adding the TPROXY route: %w", err)
			}
			return func(ctx context.Context) error {
				if prev != nil { // put back the route replace overwrote
					_, err := run.Run(ctx, "", "ip", append([]string{fam.flag, "route", "replace"}, prev.args(table)...)...)
					return err
				}
				_, err := run.Run(ctx, "", "ip", append([]string{fam.flag, "route", "del"}, route...)...)
				return err
			}, nil
		}})
	}
	return steps
}

// ipRoute is a route as `ip -j route show` prints it.
type ipRoute struct {
	Type    string `json:"type"`
	Dst     string `json:"dst"`
	Gateway string `json:"gateway"`
	Dev     string `json:"dev"`
	Metric  int    `json:"metric"`
}

// args are the `ip route replace` arguments that recreate r in table.
func (r ipRoute) args(table string) []string {
	var a []string
	if r.Type != "" {
		a = append(a, r.Type)
	}
	a = append(a, r.Dst)
	if r.Gateway != "" {
		a = append(a, "via", r.Gateway)
	}
	if r.Dev != "" {
		a = append(a, "dev", r.Dev)
	}
	if r.Metric != 0 {
		a = append(a, "metric", strconv.Itoa(r.Metric))
	}
	return append(a, "table", table)
}

// tableDefault returns the default route of table (family flag "-4" or
// "-6"); nil when there is none.
func tableDefault(ctx context.Context, run hostfw.Runner, flag, table string) (*ipRoute, error) {
	out, err := run.Run(ctx, "", "ip", flag, "-j", "route", "show", "table", table, "default")
	if err != nil {
		if strings.Contains(err.Error(), "table does not exist") {
			return nil, nil // no route was ever added to it
		}
		return nil, fmt.Errorf("reading routing table %s: %w", table, err)
	}
	var rs []ipRoute
	if len(strings.TrimSpace(string(out))) > 0 {
		if err := json.Unmarshal(out, &rs); err != nil {
			return nil, fmt.Errorf("reading ip -j route output: %w", err)
		}
	}
	if len(rs) == 0 {
		return nil, nil
	}
	return &rs[0], nil
}
