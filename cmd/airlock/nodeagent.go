package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/airlockdev/airlock/internal/admin"
	"github.com/airlockdev/airlock/internal/config"
	"github.com/airlockdev/airlock/internal/hostfw"
	"github.com/airlockdev/airlock/internal/node"
)

const nodeAgentSummary = "keep this node as airlock node apply leaves it: repair drift, serve readiness and metrics"

const nodeAgentUsage = `
The long-lived form of airlock node apply, for a DaemonSet (or a systemd
service after airlock-node.service). It applies the node section once at
start, retrying with a backoff (1s doubling up to --interval) while apply
fails, then every --interval compares the node with what apply wrote and
applies again when something drifted: airlock's nftables table missing or
its rules changed (the whole listing is compared, not only the counts), a
file apply wrote (hosts.toml, a runtime's config, the resolver's) edited
or removed, the default route moved, the state file gone. The config file
is re-read every round: a changed node section is applied at the next one.
SIGHUP checks at once.

It serves on --listen (node.agent.listen, default 127.0.0.1:9091):
  /healthz  200 while the process runs
  /readyz   200 when the last apply succeeded and the node matches it, else
            503 with the reason (a DaemonSet's readiness: applied)
  /metrics  airlock_node_agent_applies_total{result}, _drift_repaired_total{what},
            _last_apply_timestamp_seconds, _converged (0/1)
A listener that is not loopback serves these three without credentials
(admin.open). Logs are JSON (log.format), one record per drift seen and one
per drift repaired, naming what drifted.

SIGTERM or SIGINT stops it and leaves the node as it is: isolation stays.
Undoing it is airlock node reset's job (a Helm uninstall hook, after the
agent stopped: a running agent applies again). Needs root (nft, ip), as
apply does.

Example:
  airlock node agent --config /etc/airlock/airlock.yaml
  airlock node agent --config /etc/airlock/airlock.yaml --listen :9091 --interval 10s`

var nodeAgentCmd = command{summary: nodeAgentSummary, usage: nodeAgentUsage, run: runNodeAgent}

// nodeAgentOptions is what runNodeAgent hands nodeAgent.
type nodeAgentOptions struct {
	cfgPath  string
	root     string // --root, "" for node.root
	listen   string
	interval time.Duration
	runner   hostfw.Runner // nil: nft and ip of this network namespace
	// started, when set, is called with the bound address once serving.
	started func(addr string)
}

func runNodeAgent(args []string, stdout, stderr io.Writer) int {
	f := newNodeFlags("node agent", nodeAgentSummary, nodeAgentUsage, stderr)
	listen := f.fs.String("listen", "", "`ADDR` (host:port) of /healthz, /readyz and /metrics (default: node.agent.listen, "+node.DefaultAgentListen+")")
	interval := f.fs.Duration("interval", 0, "how often to check the node for drift (default: node.agent.interval, 30s)")
	logFormat := f.fs.String("log-format", "", "override log.format: json or text")
	if code, ok := parseFlags(f.fs, args); !ok {
		return code
	}
	if f.fs.NArg() > 0 {
		fmt.Fprintf(stderr, "airlock node agent: unexpected argument %q; see 'airlock node agent --help'\n", f.fs.Arg(0))
		return exitUsage
	}
	if *interval < 0 {
		fmt.Fprintf(stderr, "airlock node agent: --interval %s: must be positive (such as 30s)\n", *interval)
		return exitUsage
	}
	cfg, code := f.load(stderr, "node agent", nil)
	if cfg == nil {
		return code
	}
	format := cfg.Log.Format
	if *logFormat != "" {
		format = *logFormat
	}
	log, _, err := newLogger(stderr, format, cfg.Log.Level)
	if err != nil {
		fmt.Fprintf(stderr, "airlock node agent: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = nodeAgent(ctx, nodeAgentOptions{cfgPath: *f.cfg, root: *f.root, listen: *listen, interval: *interval}, cfg, log)
	if err != nil {
		log.Error("airlock node agent stopped", "err", err.Error())
		return exitFinding
	}
	return exitOK
}

// nodeAgent runs the agent and its endpoints until ctx ends; cfg is the
// config already loaded and checked from o.cfgPath.
func nodeAgent(ctx context.Context, o nodeAgentOptions, cfg *config.File, log *slog.Logger) error {
	ac := cfg.Node.Agent
	if o.listen == "" {
		o.listen = ac.Listen
	}
	if o.interval == 0 {
		o.interval = ac.Interval
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := node.NewAgentMetrics(reg)
	adm := admin.New(admin.Config{Listen: o.listen, Open: admin.DefaultOpen}, reg, log.With("component", "admin"))
	adm.SetReady("node", "starting: the first apply has not finished")
	if err := adm.Start(ctx); err != nil {
		return fmt.Errorf("%w: pass --listen or set node.agent.listen to a free host:port", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		adm.Shutdown(sctx)
	}()
	if os.Geteuid() != 0 && o.runner == nil {
		log.Warn("node agent: not running as root: nft and ip will fail (run it as root, or in a pod with CAP_NET_ADMIN on the host network)")
	}

	root := cfg.Node.Root
	first := true
	input := func() (node.Input, error) {
		if first { // loaded and checked by the caller
			first = false
			return nodeInput(cfg), nil
		}
		next, err := loadNodeConfig(o.cfgPath, o.root)
		if err != nil {
			return node.Input{}, err
		}
		if next.Node.Root != root {
			return node.Input{}, fmt.Errorf("node.root changed from %s to %s: restart the agent to use another root", root, next.Node.Root)
		}
		return nodeInput(next), nil
	}
	runner := o.runner
	if runner == nil {
		runner = hostfw.Exec{Root: cfg.Node.ToolsRoot}
	}
	agent := node.NewAgent(node.New(root, runner, log.With("component", "node")), node.AgentOptions{
		Input:    input,
		Interval: o.interval,
		Logger:   log.With("component", "node-agent"),
		Metrics:  metrics,
		SetReady: func(reason string) { adm.SetReady("node", reason) },
	})
	log.Info("airlock node agent started", "config", describeConfig(o.cfgPath), "root", root,
		"listen", o.listen, "interval", o.interval.String())
	if o.started != nil {
		o.started(o.listen)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { agent.Run(actx); close(done) }()
	var err error
	for stopped := false; !stopped; {
		select {
		case <-hup:
			agent.Check()
		case <-ctx.Done():
			stopped = true
		case err = <-adm.Failed():
			// The endpoints died: stop the agent too, so that the pod
			// restarts.
			stopped = true
		}
	}
	cancel()
	<-done // the round in progress ends first: an apply is never cut short
	log.Info("airlock node agent stopped; the node stays as applied (airlock node reset undoes it)")
	return err
}

// loadNodeConfig reads the config again for the agent's next round, with
// --root applied and the node section checked.
func loadNodeConfig(path, root string) (*config.File, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if root != "" {
		cfg.Node.Root = root
	}
	var problems []error
	cfg.Node.Validate(func(path, msg string) {
		problems = append(problems, fmt.Errorf("node.%s: %s", path, msg))
	})
	return cfg, errors.Join(problems...)
}
