package main

import (
	"fmt"
	"io"

	"github.com/airlockdev/airlock/internal/config"
)

const configCheckSummary = "validate a config file and report every error with its position"

const configCheckUsage = `
Decodes FILE strictly (an unknown key is an error) and validates every
section. Each problem is printed as file:line:col: field.path: message, all of
them at once. Exit 0 when the file is valid, 1 when it is not.

Example:
  airlock config check /etc/airlock/airlock.yaml`

var configCheckCmd = command{summary: configCheckSummary, usage: configCheckUsage, run: runConfigCheck}

func runConfigCheck(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("config check", configCheckSummary, configCheckUsage, stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	path := *cfgPath
	switch {
	case fs.NArg() == 1 && path == "":
		path = fs.Arg(0)
	case fs.NArg() > 1 || (fs.NArg() == 1 && path != ""):
		fmt.Fprintln(stderr, "airlock config check: give one FILE; see 'airlock config check --help'")
		return exitUsage
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return exitFinding
	}
	for _, w := range adminWarnings(cfg) {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s: ok\n", describeConfig(path))
	return exitOK
}

const configDefaultSummary = "print the embedded default config (a starting point for your own)"

const configDefaultUsage = `
Prints the configuration airlock uses when no --config is given.

Example:
  airlock config default > airlock.yaml && airlock config check airlock.yaml`

var configDefaultCmd = command{summary: configDefaultSummary, usage: configDefaultUsage, run: runConfigDefault}

func runConfigDefault(args []string, stdout, stderr io.Writer) int {
	fs, _ := newFlags("config default", configDefaultSummary, configDefaultUsage, stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	stdout.Write(config.Default())
	return exitOK
}
