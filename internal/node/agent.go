package node

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/airlockdev/airlock/internal/hostfw"
)

// AgentOptions configure an Agent.
type AgentOptions struct {
	// Input returns what the node must match. It is called every round,
	// so a changed config file is applied at the next one; an error keeps
	// the last good input (and is logged).
	Input func() (Input, error)
	// Interval is the time between two checks of the node. Default
	// DefaultAgentInterval.
	Interval time.Duration
	// Logger gets one record per apply, per change, per drift seen and
	// per drift repaired. Default: discard.
	Logger *slog.Logger
	// Metrics, when set, are updated every round.
	Metrics *AgentMetrics
	// SetReady is told the readiness after every round: "" when the last
	// apply succeeded and the node matches it, else why not. Optional.
	SetReady func(reason string)
}

// Agent keeps a node converged: it applies the node section, then checks
// the node every Interval against what the apply wrote (the nftables
// table rule by rule, every file, the default route, the state file) and
// applies again when something drifted. A failed apply is retried with a
// backoff from 1s doubling up to Interval. Stopping it leaves the node
// as it is: isolation stays until airlock node reset.
//
// Run drives it from one goroutine; Check may be called from any.
type Agent struct {
	n        *Node
	input    func() (Input, error)
	interval time.Duration
	log      *slog.Logger
	m        *AgentMetrics
	setReady func(string)
	kick     chan struct{}

	// Owned by the goroutine in Run.
	in       *Input // last good input
	applied  *Input // input of the last successful apply
	state    *State // what that apply wrote
	listing  string // the table as nft listed it right after
	previous string // last readiness reason, to log changes once
}

// NewAgent returns an agent for n. It does no I/O.
func NewAgent(n *Node, o AgentOptions) *Agent {
	if o.Interval <= 0 {
		o.Interval = DefaultAgentInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewAgentMetrics(nil)
	}
	if o.SetReady == nil {
		o.SetReady = func(string) {}
	}
	return &Agent{n: n, input: o.Input, interval: o.Interval, log: o.Logger, m: o.Metrics, setReady: o.SetReady,
		kick: make(chan struct{}, 1), previous: "starting"}
}

// Check asks for a check now instead of at the end of the interval (a
// watched file changed, SIGHUP). It does not block.
func (a *Agent) Check() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Run applies, then keeps the node converged until ctx ends. A round in
// progress when ctx ends is finished (an apply is never cut short: it
// would roll back), then Run returns; the node stays as it is.
func (a *Agent) Run(ctx context.Context) {
	a.setReady("starting: the first apply has not finished")
	first := min(time.Second, a.interval)
	backoff := first
	for {
		next := a.interval
		if !a.round(context.WithoutCancel(ctx)) {
			next, backoff = backoff, min(backoff*2, a.interval)
		} else {
			backoff = first
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-a.kick:
			t.Stop()
		}
	}
}

// round is one check (and apply when needed); it reports whether the
// node is converged afterwards.
func (a *Agent) round(ctx context.Context) bool {
	in, err := a.input()
	switch {
	case err != nil && a.in == nil:
		return a.notReady("config: " + err.Error())
	case err != nil:
		a.log.Error("node agent: config unusable; keeping the last good one", "err", err.Error())
	default:
		a.in = &in
	}
	switch {
	case a.applied == nil:
		return a.apply(ctx, "start", nil)
	case !reflect.DeepEqual(*a.in, *a.applied):
		return a.apply(ctx, "config changed", nil)
	}
	drift, err := a.n.drift(ctx, a.state, a.listing)
	if err != nil {
		a.log.Error("node agent: checking the node failed", "err", err.Error())
		return a.notReady("checking the node: " + err.Error())
	}
	if len(drift) == 0 {
		a.log.Debug("node agent: node converged")
		return a.ready()
	}
	for _, d := range drift {
		a.log.Warn("node agent: drift", d.attrs()...)
	}
	if slices.ContainsFunc(drift, func(d Drift) bool { return d.What == DriftState }) {
		if ok, err := a.n.restoreState(a.state); err != nil {
			a.log.Error("node agent: restoring the state file failed", "err", err.Error())
		} else if ok {
			a.log.Info("node agent: state file restored from the last apply (its backups are still there)")
		}
	}
	return a.apply(ctx, "drift", drift)
}

// apply applies a.in, reloads the ruleset when the table drifted in a way
// Apply does not see (other rules, same counts), and counts the drift
// that is gone afterwards as repaired.
func (a *Agent) apply(ctx context.Context, why string, drift []Drift) bool {
	in := *a.in
	res, err := a.n.Apply(ctx, in)
	if err == nil && res.State.Table && (a.applied == nil || hasRuleset(drift)) && !loadedTable(res.Changes) {
		// The first apply reloads too: the listing compared later must be
		// the ruleset's, not whatever was installed before the agent.
		if err = a.n.reloadRuleset(ctx, res.Plan); err == nil {
			res.Changes = append(res.Changes, fmt.Sprintf("reloaded table inet %s (its rules differed from the ruleset)", Table))
		}
	}
	if err != nil {
		a.m.Applies.WithLabelValues("error").Inc()
		a.log.Error("node agent: apply failed; retrying with backoff", "why", why, "err", err.Error())
		return a.notReady("apply failed: " + err.Error())
	}
	a.m.Applies.WithLabelValues("ok").Inc()
	a.m.LastApply.Set(float64(time.Now().UnixNano()) / 1e9)
	for _, c := range res.Changes {
		a.log.Info("node agent: applied", "why", why, "change", c)
	}
	if len(res.Changes) > 0 {
		// Notes say what must restart to read the files written (containerd
		// after its config.toml changed) and what to know.
		for _, note := range res.Plan.Notes {
			a.log.Warn("node agent: note", "note", note)
		}
	}
	a.applied, a.state = &in, res.State
	a.listing, _ = liveTable(ctx, hostfw.NFT{R: a.n.run})
	after, err := a.n.drift(ctx, a.state, a.listing)
	if err != nil {
		a.log.Error("node agent: checking the node after apply failed", "err", err.Error())
		return a.notReady("checking the node: " + err.Error())
	}
	for _, d := range drift {
		if !slices.Contains(after, d) {
			a.m.Repaired.WithLabelValues(d.What).Inc()
			a.log.Info("node agent: drift repaired", d.attrs()...)
		}
	}
	if len(after) > 0 {
		texts := make([]string, len(after))
		for i, d := range after {
			texts[i] = d.String()
		}
		a.log.Error("node agent: the node still differs after apply; retrying with backoff", "drift", texts)
		return a.notReady("drift after apply: " + strings.Join(texts, "; "))
	}
	if why == "start" || why == "config changed" {
		a.log.Info("node agent: applied", "why", why, "outbound_type", string(res.State.OutboundType),
			"artifact_source", string(res.State.ArtifactSource), "resolver", string(res.State.Resolver), "changes", len(res.Changes))
	}
	return a.ready()
}

func (a *Agent) ready() bool {
	a.m.Converged.Set(1)
	a.setReady("")
	if a.previous != "" {
		a.log.Info("node agent: ready: the node matches the last apply")
		a.previous = ""
	}
	return true
}

func (a *Agent) notReady(reason string) bool {
	a.m.Converged.Set(0)
	a.setReady(reason)
	a.previous = reason
	return false
}

func hasRuleset(drift []Drift) bool {
	return slices.ContainsFunc(drift, func(d Drift) bool { return d.What == DriftRuleset })
}

func loadedTable(changes []string) bool {
	return slices.ContainsFunc(changes, func(c string) bool { return strings.HasPrefix(c, "loaded table ") })
}
