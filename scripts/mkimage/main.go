// Command mkimage builds airlock's OCI image without a Docker daemon and
// pushes it to any registry (`make image`, docs/kubernetes.md).
//
//	mkimage build [--out dist/image] [--platforms linux/amd64,linux/arm64] [--version V] [--ca-file F]
//	mkimage push --layout dist/image --to HOST:PORT/REPO:TAG [--user U --password-env VAR] [--insecure]
//
// build cross-compiles a static airlock binary per platform (CGO_ENABLED=0,
// -trimpath, fixed -ldflags) and assembles, with go-containerregistry, an
// OCI image index written as an OCI layout directory. Every timestamp is
// SOURCE_DATE_EPOCH (default: the last commit's time) and every owner is
// fixed, so the same sources give the same digest. push copies the layout's
// index to a registry; loopback registries are spoken to in plain HTTP.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  mkimage build [--out DIR] [--platforms linux/amd64,linux/arm64] [--version V] [--ca-file FILE] [--src DIR]
  mkimage push --layout DIR --to HOST[:PORT]/REPO:TAG [--user U --password-env VAR] [--insecure]
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "build":
		fs := flag.NewFlagSet("build", flag.ContinueOnError)
		fs.SetOutput(stderr)
		var o buildOptions
		var platforms string
		fs.StringVar(&o.Out, "out", "dist/image", "OCI layout directory to write (replaced)")
		fs.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated os/arch list")
		fs.StringVar(&o.Version, "version", "", "version stamped into the binary (default: git describe --always --dirty)")
		fs.StringVar(&o.CAFile, "ca-file", "/etc/ssl/certs/ca-certificates.crt", "CA bundle copied to /etc/ssl/certs/ca-certificates.crt")
		fs.StringVar(&o.Src, "src", ".", "module root (holds cmd/airlock)")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		o.Platforms = strings.Split(platforms, ",")
		res, err := build(ctx, o, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "mkimage build: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: index %s\n", o.Out, res.Index)
		for _, p := range res.Platforms {
			fmt.Fprintf(stdout, "  %-12s %s\n", p.Platform, p.Digest)
		}
		return 0
	case "push":
		fs := flag.NewFlagSet("push", flag.ContinueOnError)
		fs.SetOutput(stderr)
		var o pushOptions
		fs.StringVar(&o.Layout, "layout", "dist/image", "OCI layout directory written by build")
		fs.StringVar(&o.To, "to", "", "destination reference HOST[:PORT]/REPO:TAG")
		fs.StringVar(&o.User, "user", "", "registry user (with --password-env); default: the Docker keychain")
		fs.StringVar(&o.PasswordEnv, "password-env", "", "environment variable holding the password")
		fs.BoolVar(&o.Insecure, "insecure", false, "plain HTTP (always on for loopback hosts)")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		d, err := push(ctx, o)
		if err != nil {
			fmt.Fprintf(stderr, "mkimage push: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "pushed %s@%s\n", o.To, d)
		return 0
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
}
