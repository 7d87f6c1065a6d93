// Command cachebench is the measuring half of bench/cache.sh: it seeds an
// upstream registry with the benchmark's images, pulls images through a
// pull-through cache with N concurrent verifying clients, measures the time
// to the first body byte of a blob, and counts what a docker-registry
// upstream served from its access log. bench/cache.sh starts and stops the
// servers; every subcommand prints one JSON object on stdout.
//
//	cachebench seed      -registry URL            push bench/img:v1 and bench/blob:v1
//	cachebench pull      -base URL -repo R -ref T -c N [-pids P]
//	cachebench ttfb      -base URL -repo R -ref T -digest D -mode digest|manifest
//	cachebench accesslog -file F [-offset N]      upstream requests and bytes
//	cachebench probe     -url URL                 one GET: status, time, body
//	cachebench report    -in results.jsonl        the Markdown report
//
// Every client runs in this process, one goroutine and one connection each;
// nothing here is shared between subcommands, and no state survives a run.
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "seed":
		err = runSeed(args)
	case "pull":
		err = runPull(args)
	case "ttfb":
		err = runTTFB(args)
	case "accesslog":
		err = runAccessLog(args)
	case "probe":
		err = runProbe(args)
	case "report":
		err = runReport(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cachebench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: cachebench seed|pull|ttfb|accesslog|probe|report [flags] (-h for each)")
	os.Exit(2)
}

// emit prints v as one JSON line.
func emit(v any) error {
	return json.NewEncoder(os.Stdout).Encode(v)
}
