package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/config"
	"github.com/airlockdev/airlock/internal/registry"
)

const registryGCSummary = "find (and with --delete remove) blobs no manifest references"

const registryGCUsage = `
Marks every blob referenced by a manifest of any repository, then lists the
blobs and repository links nothing references. Dry run unless --delete is
given. A blob another repository still references is never deleted, and
blobs and links written within --grace are kept (a push uploads its blobs
before its manifest). GC may run while airlock serve uses the storage: it
never touches the server's temp files or upload sessions, and it deletes
only while no reference is being created (a lock shared with the server).

Example:
  airlock registry gc --config /etc/airlock/airlock.yaml            # what would go
  airlock registry gc --config /etc/airlock/airlock.yaml --delete   # remove it`

// minLiveGrace: a shorter --grace with --delete while another process uses
// the storage gets a warning.
const minLiveGrace = 10 * time.Minute

var registryGCCmd = command{summary: registryGCSummary, usage: registryGCUsage, run: runRegistryGC}

func runRegistryGC(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("registry gc", registryGCSummary, registryGCUsage, stderr)
	del := fs.Bool("delete", false, "delete what is unreferenced (default: only report)")
	grace := fs.Duration("grace", time.Hour, "keep blobs and links younger than this (pushes in flight)")
	verbose := fs.Bool("v", false, "list every blob and link")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFinding
	}
	sc := cfg.Registry.Storage
	loc, err := sc.Location()
	if err != nil {
		fmt.Fprintf(stderr, "airlock registry gc: %v; check registry.storage\n", err)
		return exitFinding
	}
	path := loc.String()
	if loc.Scheme == "file" {
		path = loc.Path
		if _, err := os.Stat(path); err != nil {
			fmt.Fprintf(stderr, "airlock registry gc: storage %s: %v; check registry.storage.path\n", path, err)
			return exitFinding
		}
	}
	sc.LocalCache = registry.LocalCacheConfig{} // the server's local copies are its own
	bs, err := openStorage(context.Background(), sc, blobstore.Options{UploadTTL: cfg.Registry.EffectiveUploadTTL()}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintf(stderr, "airlock registry gc: %v\n", err)
		return exitFinding
	}
	defer bs.Close()
	users := 0
	if loc.Scheme == "file" {
		users, err = bs.OtherUsers()
		if err != nil {
			fmt.Fprintf(stderr, "airlock registry gc: %v\n", err)
		}
		if users > 0 && *del && *grace < minLiveGrace {
			fmt.Fprintf(stderr, "airlock registry gc: warning: other processes using %s: %d; with --grace %s a blob pushed for a manifest not yet pushed may be deleted (the push then fails with MANIFEST_BLOB_UNKNOWN)\n", path, users, *grace)
		}
	} else if *del && *grace < minLiveGrace {
		fmt.Fprintf(stderr, "airlock registry gc: warning: on object storage replicas may be pushing; with --grace %s a blob pushed for a manifest not yet pushed may be deleted\n", *grace)
	}
	if *del {
		release, err := jobLease(cfg, "gc", stderr)
		if err != nil {
			fmt.Fprintf(stderr, "airlock registry gc: %v\n", err)
			return exitFinding
		}
		defer release()
	}
	rep, err := bs.GC(context.Background(), !*del, *grace)
	if err != nil {
		fmt.Fprintf(stderr, "airlock registry gc: %v\n", err)
		return exitFinding
	}
	verb := "would delete"
	if *del {
		verb = "deleted"
	}
	if *verbose {
		for _, d := range rep.Blobs {
			fmt.Fprintf(stdout, "blob %s\n", d)
		}
		for _, l := range rep.RemovedLinks {
			fmt.Fprintf(stdout, "link %v\n", l)
		}
	}
	fmt.Fprintf(stdout, "%s %d blobs (%s) and %d repository links; scanned %d repositories, %d manifests\n",
		verb, len(rep.Blobs), formatBytes(rep.Bytes), rep.Links, rep.Repositories, rep.Manifests)
	if users > 0 {
		fmt.Fprintf(stdout, "other processes using this storage: %d (their temp files and uploads were left alone)\n", users)
	}
	if !*del && (len(rep.Blobs) > 0 || rep.Links > 0) {
		fmt.Fprintln(stdout, "run again with --delete to remove them")
	}
	return exitOK
}

const registryHashSummary = "print a bcrypt hash for registry.users[].passwordHash"

const registryHashUsage = `
Reads a password from standard input (one line) and prints its bcrypt hash,
for the passwordHash of a registry user.

Example:
  printf '%s\n' "$CI_PASSWORD" | airlock registry hash`

var registryHashCmd = command{summary: registryHashSummary, usage: registryHashUsage, run: runRegistryHash}

func runRegistryHash(args []string, stdout, stderr io.Writer) int {
	fs, _ := newFlags("registry hash", registryHashSummary, registryHashUsage, stderr)
	cost := fs.Int("cost", bcrypt.DefaultCost, "bcrypt cost (4–31)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		fmt.Fprintf(stderr, "airlock registry hash: read password: %v\n", err)
		return exitFinding
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		fmt.Fprintln(stderr, "airlock registry hash: empty password; pipe the password on standard input")
		return exitUsage
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), *cost)
	if err != nil {
		fmt.Fprintf(stderr, "airlock registry hash: %v\n", err)
		return exitUsage
	}
	fmt.Fprintln(stdout, string(h))
	return exitOK
}
