package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"source": runSource,
		"echo":   runEcho,
		"stream": runStream,
		"rate":   runRate,
		"idle":   runIdle,
		"relay":  runRelay,
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		usage(os.Stderr)
		os.Exit(2)
	}
	if err := run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "gwbench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: gwbench source|echo|relay|stream|rate|idle [flags] (see doc.go)")
}
