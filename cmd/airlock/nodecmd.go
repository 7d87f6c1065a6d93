package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/airlockdev/airlock/internal/config"
	"github.com/airlockdev/airlock/internal/hostfw"
	"github.com/airlockdev/airlock/internal/node"
)

const nodeApplySummary = "make this host an isolated node: nftables, containerd mirrors, resolver"

const nodeApplyUsage = `
Applies the node section of the config to this host: the outbound type's
nftables rules (table inet airlock_node; block and userDefinedRouting), for
userDefinedRouting the default route via node.gateway, for artifactSource
Cache one containerd hosts.toml per cache-rule upstream pinned to the
airlock registry (every node.registry replica, in order; and containerd's
config_path when missing), and the resolver pointed at node.dns (every
replica, with short timeouts); docs/ha.md covers replicas. Every file lives
under --root (node.root, default /); files changed are backed up first,
under <root>/var/lib/airlock/node. Idempotent: running it again prints "no
change". Nothing is changed when a step fails. Makes no network calls. Needs
root (nft, ip) unless --dry-run.

Example:
  airlock node apply --config /etc/airlock/airlock.yaml --dry-run
  airlock node apply --config /etc/airlock/airlock.yaml --outbound-type block --artifact-source Cache`

const nodeStatusSummary = "show what airlock node apply applied, and any drift"

const nodeStatusUsage = `
Prints the outbound type, artifact source, mirror targets, resolver, rule
counts and the files airlock wrote, then every drift it sees (table missing
or changed, a file changed or deleted, the default route moved). Exit 1
when there is drift.

Example:
  airlock node status --config /etc/airlock/airlock.yaml
  airlock node status --json`

const nodeResetSummary = "undo airlock node apply: restore files, remove rules, restore the route"

const nodeResetUsage = `
Restores every file airlock changed from its backup, removes the files it
created, deletes table inet airlock_node, restores the default route and
removes the state. Works after outside changes (a flushed ruleset, a deleted
file). Needs root.

Example:
  airlock node reset --config /etc/airlock/airlock.yaml`

var (
	nodeApplyCmd  = command{summary: nodeApplySummary, usage: nodeApplyUsage, run: runNodeApply}
	nodeStatusCmd = command{summary: nodeStatusSummary, usage: nodeStatusUsage, run: runNodeStatus}
	nodeResetCmd  = command{summary: nodeResetSummary, usage: nodeResetUsage, run: runNodeReset}
)

// nodeFlags are the flags every node command shares.
type nodeFlags struct {
	fs   *flag.FlagSet
	cfg  *string
	root *string
}

func newNodeFlags(name, summary, usage string, stderr io.Writer) nodeFlags {
	fs, cfg := newFlags(name, summary, usage, stderr)
	root := fs.String("root", "", "`DIR` every file is read and written under (default: node.root, /)")
	return nodeFlags{fs: fs, cfg: cfg, root: root}
}

// load reads the config and applies overrides; code is non-zero on error.
func (f nodeFlags) load(stderr io.Writer, name string, override func(*node.Config)) (*config.File, int) {
	cfg, err := config.Load(*f.cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, exitFinding
	}
	if *f.root != "" {
		cfg.Node.Root = *f.root
	}
	if override != nil {
		override(&cfg.Node)
	}
	bad := false
	cfg.Node.Validate(func(path, msg string) {
		fmt.Fprintf(stderr, "airlock %s: node.%s: %s\n", name, path, msg)
		bad = true
	})
	if bad {
		return nil, exitUsage
	}
	return cfg, exitOK
}

func nodeInput(cfg *config.File) node.Input {
	in := node.Input{Config: cfg.Node, RegistryTLS: cfg.Registry.TLS.Enabled()}
	for _, r := range cfg.Registry.Cache.CacheRules {
		in.CacheRules = append(in.CacheRules, node.CacheRule{SourceRepo: r.SourceRepo, TargetRepo: r.TargetRepo})
	}
	return in
}

func runNodeApply(args []string, stdout, stderr io.Writer) int {
	f := newNodeFlags("node apply", nodeApplySummary, nodeApplyUsage, stderr)
	outbound := f.fs.String("outbound-type", "", "`TYPE`: none, block, userDefinedRouting or loadBalancer (overrides node.outboundType)")
	source := f.fs.String("artifact-source", "", "`SOURCE`: Direct or Cache (overrides node.artifactSource)")
	dry := f.fs.Bool("dry-run", false, "print the ruleset and every file instead of applying them")
	if code, ok := parseFlags(f.fs, args); !ok {
		return code
	}
	cfg, code := f.load(stderr, "node apply", func(c *node.Config) {
		if *outbound != "" {
			c.OutboundType = node.OutboundType(*outbound)
		}
		if *source != "" {
			c.ArtifactSource = node.ArtifactSource(*source)
		}
	})
	if cfg == nil {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n := node.New(cfg.Node.Root, hostfw.Exec{Root: cfg.Node.ToolsRoot}, nil)
	in := nodeInput(cfg)
	if *dry {
		p, err := n.Plan(in)
		if err != nil {
			fmt.Fprintf(stderr, "airlock node apply: %v\n", err)
			return exitFinding
		}
		io.WriteString(stdout, p.DryRun())
		return exitOK
	}
	res, err := n.Apply(ctx, in)
	if err != nil {
		fmt.Fprintf(stderr, "airlock node apply: %v\n", err)
		return exitFinding
	}
	for _, c := range res.Changes {
		fmt.Fprintln(stdout, c)
	}
	if len(res.Changes) == 0 {
		fmt.Fprintln(stdout, "no change")
	}
	for _, note := range res.Plan.Notes {
		if len(res.Changes) > 0 {
			fmt.Fprintf(stdout, "note: %s\n", note)
		}
	}
	for _, r := range res.Plan.Runtimes {
		fmt.Fprintf(stdout, "runtime: %s; to read it: %s\n", r, r.Restart)
	}
	fmt.Fprintf(stdout, "applied: outboundType %s, artifactSource %s, resolver %s (airlock node status shows it)\n",
		res.State.OutboundType, res.State.ArtifactSource, res.State.Resolver)
	return exitOK
}

func runNodeStatus(args []string, stdout, stderr io.Writer) int {
	f := newNodeFlags("node status", nodeStatusSummary, nodeStatusUsage, stderr)
	asJSON := f.fs.Bool("json", false, "print the status as JSON")
	if code, ok := parseFlags(f.fs, args); !ok {
		return code
	}
	cfg, code := f.load(stderr, "node status", nil)
	if cfg == nil {
		return code
	}
	st, err := node.New(cfg.Node.Root, hostfw.Exec{Root: cfg.Node.ToolsRoot}, nil).Status(context.Background())
	if err != nil {
		fmt.Fprintf(stderr, "airlock node status: %v\n", err)
		return exitFinding
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	} else {
		st.Print(stdout)
	}
	if len(st.Drift) > 0 {
		return exitFinding
	}
	return exitOK
}

func runNodeReset(args []string, stdout, stderr io.Writer) int {
	f := newNodeFlags("node reset", nodeResetSummary, nodeResetUsage, stderr)
	if code, ok := parseFlags(f.fs, args); !ok {
		return code
	}
	cfg, code := f.load(stderr, "node reset", nil)
	if cfg == nil {
		return code
	}
	changes, err := node.New(cfg.Node.Root, hostfw.Exec{Root: cfg.Node.ToolsRoot}, nil).Reset(context.Background())
	for _, c := range changes {
		fmt.Fprintln(stdout, c)
	}
	if err != nil {
		fmt.Fprintf(stderr, "airlock node reset: %v\n", err)
		return exitFinding
	}
	if len(changes) == 0 {
		fmt.Fprintln(stdout, "nothing to reset")
	}
	return exitOK
}
