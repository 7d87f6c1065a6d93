package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const versionSummary = "print the version"

const versionUsage = `
Example:
  airlock version`

var versionCmd = command{summary: versionSummary, usage: versionUsage, run: runVersion}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs, _ := newFlags("version", versionSummary, versionUsage, stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = " " + s.Value
			}
		}
		fmt.Fprintf(stdout, "airlock %s%s (%s)\n", version, rev, bi.GoVersion)
		return exitOK
	}
	fmt.Fprintf(stdout, "airlock %s\n", version)
	return exitOK
}
