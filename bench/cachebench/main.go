// Command cachebench is the measuring half of bench/cache.sh: it seeds an
// upstream registry with the benchmark's images, pulls images through a
// pull-through cache with N concurrent verifying clients, measures the time
// to the first body byte of a blob, and counts what a docker-registry
// upstream served from its access log. bench/cache.sh starts and stops the
// servers; every subcommand prints one JSON object on stdout.
//
//	cachebench seed      -registry URL            push bench/img:v1 and bench/blob:v1
//	cachebench pull      -base URL[,URL…] -repo R -ref T -c N [-pids P]
//	cachebench ttfb      -base URL -repo R -ref T -digest D -mode digest|manifest
//	cachebench accesslog -file F [-offset N]      upstream requests and bytes
//	cachebench probe     -url URL                 one GET: status, time, body
//	cachebench report    -in results.jsonl        the Markdown report
//	cachebench throttle  -target H:P -rate R      rate-limited TCP proxy
//
// Every client runs in this process, one goroutine and one connection each;
// nothing here is shared between subcommands, and no state survives a run.
// The throttle is the one long-running subcommand: a TCP proxy whose two
// directions each draw on one token bucket shared by all its connections
// (goroutines: one per direction per connection), so the upstream looks
// like a node's link of that rate rather than loopback; it runs until
// SIGTERM and then prints what it carried.
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
	case "throttle":
		err = runThrottle(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cachebench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: cachebench seed|pull|ttfb|accesslog|probe|report|throttle [flags] (-h for each)")
	os.Exit(2)
}

// emit prints v as one JSON line.
func emit(v any) error {
	return json.NewEncoder(os.Stdout).Encode(v)
}
