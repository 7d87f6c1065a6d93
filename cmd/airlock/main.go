// Command airlock is one binary for a network-isolated cluster: an OCI
// registry and pull-through cache, an egress gateway, a policy DNS server
// and the tools that isolate a node and prove it.
//
// This package only wires: it parses flags, loads the configuration,
// constructs the components, opens listeners and handles signals. The
// behaviour lives under internal/.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Exit codes (DESIGN §3).
const (
	exitOK      = 0
	exitFinding = 1 // a check failed, a leak was found, or the command failed
	exitUsage   = 2
)

// command is one leaf of the command tree.
type command struct {
	summary string
	usage   string // full help after the summary, with an example
	run     func(args []string, stdout, stderr io.Writer) int
}

// commands maps "group sub" (or "name") to its command.
func commands() map[string]command {
	return map[string]command{
		"serve":          serveCmd,
		"cache warm":     cacheWarmCmd,
		"cache ls":       cacheLsCmd,
		"config check":   configCheckCmd,
		"config default": configDefaultCmd,
		"gateway rules":  gatewayRulesCmd,
		"node agent":     nodeAgentCmd,
		"node apply":     nodeApplyCmd,
		"node reset":     nodeResetCmd,
		"node status":    nodeStatusCmd,
		"policy check":   policyCheckCmd,
		"policy explain": policyExplainCmd,
		"policy hits":    policyHitsCmd,
		"policy learn":   policyLearnCmd,
		"policy tags":    policyTagsCmd,
		"registry gc":    registryGCCmd,
		"registry hash":  registryHashCmd,
		"verify":         verifyCmd,
		"version":        versionCmd,
	}
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		topUsage(stdout, cmds)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if c, ok := cmds[args[0]]; ok {
		return c.run(args[1:], stdout, stderr)
	}
	if len(args) >= 2 {
		if c, ok := cmds[args[0]+" "+args[1]]; ok {
			return c.run(args[2:], stdout, stderr)
		}
	}
	var group []string
	for name := range cmds {
		if strings.HasPrefix(name, args[0]+" ") {
			group = append(group, name)
		}
	}
	if len(group) > 0 {
		sort.Strings(group)
		fmt.Fprintf(stderr, "airlock %s: say which one: %s\n", args[0], strings.Join(group, ", "))
		return exitUsage
	}
	fmt.Fprintf(stderr, "airlock: unknown command %q; run 'airlock --help' for the list\n", args[0])
	return exitUsage
}

func topUsage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "airlock — registry cache, egress gateway, policy DNS and node isolation in one binary.")
	fmt.Fprintln(w, "\nUsage: airlock COMMAND [flags]   (every command takes --config FILE; without it the embedded default is used)")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'airlock COMMAND --help' for a command's flags and an example.")
}

// newFlags returns a flag set whose --help prints the command's usage.
// Every command has --config.
func newFlags(name, summary, usage string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", "", "configuration `FILE` (default: the embedded default config)")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "airlock %s — %s\n\n%s\n\nFlags:\n", name, summary, strings.TrimSpace(usage))
		fs.PrintDefaults()
	}
	return fs, cfg
}

// parseFlags parses args; it returns an exit code and false when the
// command should stop (help shown or a usage error).
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK, false
	case err != nil:
		return exitUsage, false
	}
	return exitOK, true
}
