package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/airlockdev/airlock/internal/cache"
	"github.com/airlockdev/airlock/internal/config"
	"github.com/airlockdev/airlock/internal/warm"
)

const cacheWarmSummary = "pre-pull a list of images through the running registry's cache"

const cacheWarmUsage = `
Reads image references from FILE (one per line; # comments) and pulls each
through the running airlock registry, so its cache fetches every manifest
and blob from the upstream now rather than when a node first needs it.
References are written as the node writes them (mcr.microsoft.com/…:tag,
host/repo@sha256:…); the registry maps them to its cache rules. Every
platform of an index is pulled, or only --platform. Shows live progress per
image and blob, then a summary; exits 1 naming every image that failed.

The registry is the one the config describes (registry.listen, with TLS when
registry.tls is set, trusting registry.tls.certFile), or --registry URL.
Credentials, when anonymous pull is off: --username and AIRLOCK_PASSWORD.

Example:
  airlock cache warm --config /etc/airlock/airlock.yaml images.txt
  airlock cache warm --registry http://10.42.2.4:5000 --platform linux/amd64 images.txt`

var cacheWarmCmd = command{summary: cacheWarmSummary, usage: cacheWarmUsage, run: runCacheWarm}

func runCacheWarm(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("cache warm", cacheWarmSummary, cacheWarmUsage, stderr)
	regURL := fs.String("registry", "", "registry `URL` (default: from registry.listen in the config)")
	platform := fs.String("platform", "", "only this platform of an index, os/arch[/variant] (default: all)")
	conc := fs.Int("concurrency", 4, "blobs downloaded at once")
	user := fs.String("username", "", "user for HTTP Basic (password from AIRLOCK_PASSWORD)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "airlock cache warm: give one FILE of image references; see 'airlock cache warm --help'")
		return exitUsage
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "airlock cache warm: %v\n", err)
		return exitUsage
	}
	refs, err := warm.ParseList(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(stderr, "airlock cache warm: %s: %v\n", fs.Arg(0), err)
		return exitUsage
	}
	base, client, err := registryClient(*cfgPath, *regURL)
	if err != nil {
		fmt.Fprintf(stderr, "airlock cache warm: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	live := false
	if out, ok := stdout.(*os.File); ok {
		live = isTerminal(out)
	}
	disp := newProgressDisplay(stdout, live)
	dctx, dstop := context.WithCancel(ctx)
	drawn := make(chan struct{})
	go func() { disp.Run(dctx); close(drawn) }()
	start := time.Now()
	results := warm.Run(ctx, refs, warm.Options{
		Base: base, Client: client, Username: *user, Password: os.Getenv("AIRLOCK_PASSWORD"),
		Platform: *platform, Concurrency: *conc, Progress: disp.Event,
	})
	dstop()
	<-drawn
	var blobs, failed int
	var bytes int64
	for _, r := range results {
		blobs += r.Blobs
		bytes += r.Bytes
		if r.Err != nil {
			failed++
		}
	}
	fmt.Fprintf(stdout, "warmed %d of %d images: %d blobs, %s from %s in %s\n",
		len(results)-failed, len(results), blobs, formatBytes(bytes), base, time.Since(start).Round(time.Millisecond))
	if failed > 0 {
		for _, r := range results {
			if r.Err != nil {
				fmt.Fprintf(stdout, "FAILED %s (line %d): %v\n", r.Ref.Raw, r.Ref.Line, r.Err)
			}
		}
		return exitFinding
	}
	return exitOK
}

// registryClient finds the registry's URL and an HTTP client that trusts
// its certificate.
func registryClient(cfgPath, override string) (string, *http.Client, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return "", nil, err
	}
	client := &http.Client{Timeout: 0}
	rc := cfg.Registry.Config
	if rc.TLS.Enabled() {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if pem, err := os.ReadFile(rc.TLS.CertFile); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	}
	if override != "" {
		return override, client, nil
	}
	if rc.Listen == "" {
		return "", nil, fmt.Errorf("the config sets no registry.listen; give --registry URL")
	}
	scheme := "http"
	if rc.TLS.Enabled() {
		scheme = "https"
	}
	return scheme + "://" + rc.Listen, client, nil
}

const cacheLsSummary = "list cached repositories, tags, sizes and ages (from the running server)"

const cacheLsUsage = `
Asks the running airlock's admin listener (admin.listen, or --admin URL) for
the repositories under cache rules: tags with their digests and when they
were fetched, blob count, bytes and last use. When admin.listen is not
loopback, give an admin user (--user, and --password-env naming the variable
that holds the password).

Example:
  airlock cache ls --config /etc/airlock/airlock.yaml
  airlock cache ls --admin http://127.0.0.1:9090 --json
  ADMIN_PW=... airlock cache ls --admin http://10.0.0.4:9090 --user ops --password-env ADMIN_PW`

var cacheLsCmd = command{summary: cacheLsSummary, usage: cacheLsUsage, run: runCacheLs}

func runCacheLs(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("cache ls", cacheLsSummary, cacheLsUsage, stderr)
	adminURL := fs.String("admin", "", "admin `URL` (default: from admin.listen)")
	asJSON := fs.Bool("json", false, "print JSON")
	auth := addAdminAuthFlags(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if msg := auth.check(); msg != "" {
		fmt.Fprintf(stderr, "airlock cache ls: %s; see 'airlock cache ls --help'\n", msg)
		return exitUsage
	}
	base := *adminURL
	if base == "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitUsage
		}
		if cfg.Admin.Listen == "" {
			fmt.Fprintln(stderr, "airlock cache ls: the config sets no admin.listen; give --admin URL")
			return exitUsage
		}
		base = "http://" + cfg.Admin.Listen
	}
	body, err := auth.get(base+"/cache", 30*time.Second)
	if ae := (*adminError)(nil); errors.As(err, &ae) && ae.status == http.StatusNotFound {
		fmt.Fprintln(stderr, "airlock cache ls: this airlock has no cache rules (registry.cacheRules is empty)")
		return exitFinding
	}
	if err != nil {
		fmt.Fprintf(stderr, "airlock cache ls: %v\n", err)
		return exitFinding
	}
	defer body.Close()
	var inv []cache.RepoInventory
	if err := json.NewDecoder(body).Decode(&inv); err != nil {
		fmt.Fprintf(stderr, "airlock cache ls: %v\n", err)
		return exitFinding
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(inv)
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tUPSTREAM\tTAGS\tBLOBS\tSIZE\tLAST USED")
	now := time.Now()
	for _, r := range inv {
		tags := ""
		for i, t := range r.Tags {
			if i > 0 {
				tags += ","
			}
			tags += t.Tag + " (" + age(now, t.Fetched) + ")"
		}
		if tags == "" {
			tags = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.Repository, r.Upstream, tags, r.Blobs, formatBytes(r.Bytes), age(now, r.LastUsed))
	}
	tw.Flush()
	return exitOK
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}
