//go:build e2e

package node

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// The parts the node e2e rigs share.

// e2eAirlockBin is $AIRLOCK_BIN, or cmd/airlock built into dir.
func e2eAirlockBin(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv("AIRLOCK_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(dir, "airlock")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/airlock").CombinedOutput(); err != nil {
		t.Fatalf("go build airlock: %v\n%s", err, out)
	}
	return bin
}

// startUpstream starts the "mcr.microsoft.com" stand-in: docker-registry
// on 127.0.0.1:5001 inside ns, storing under dir/upstream (storage is
// extra keys of its storage map, e.g. "delete: {enabled: true}"), and
// waits for it. It returns a client that dials from inside ns.
func startUpstream(t *testing.T, ns, dir, storage string) *http.Client {
	t.Helper()
	if storage != "" {
		storage = ", " + storage
	}
	must(t, os.WriteFile(filepath.Join(dir, "upstream.yml"), fmt.Appendf(nil, `version: 0.1
log: {level: info, formatter: text}
storage: {filesystem: {rootdirectory: %s/upstream}%s}
http: {addr: 127.0.0.1:5001}
`, dir, storage), 0o644))
	startIn(t, ns, filepath.Join(dir, "upstream.log"), "docker-registry", "serve", filepath.Join(dir, "upstream.yml"))
	hc := &http.Client{Transport: &http.Transport{DialContext: nsDial(ns), Proxy: nil}, Timeout: 10 * time.Second}
	waitHTTP(t, hc, "http://127.0.0.1:5001/v2/")
	return hc
}

// pushPause pushes a random image to the upstream as
// oss/kubernetes/pause:3.6 and returns its digest.
func pushPause(t *testing.T, hc *http.Client) v1.Hash {
	t.Helper()
	img, err := random.Image(4096, 2)
	must(t, err)
	ref, err := name.ParseReference("127.0.0.1:5001/oss/kubernetes/pause:3.6", name.Insecure)
	must(t, err)
	must(t, remote.Write(ref, img, remote.WithTransport(hc.Transport)))
	digest, err := img.Digest()
	must(t, err)
	return digest
}

// acceptAndClose listens on addr inside ns and closes every connection it
// accepts (an address that answers TCP), until the test ends.
func acceptAndClose(t *testing.T, ns, addr string) {
	t.Helper()
	var ln net.Listener
	var err error
	netnstest.Do(t, ns, func() { ln, err = net.Listen("tcp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// packetCounter puts a counter of the packets matching match (an nft
// expression) on hook (output, prerouting) in ns, ahead of everything else
// there, and returns a reader of it.
func packetCounter(t *testing.T, ns, hook, match string) func() int {
	t.Helper()
	if err := nftIn(ns, "table inet alxn_count {\n chain c {\n  type filter hook "+hook+" priority -300; policy accept;\n  "+match+" counter\n }\n}\n"); err != nil {
		t.Fatalf("counter in %s: %v", ns, err)
	}
	return func() int {
		t.Helper()
		out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "alxn_count").CombinedOutput()
		m := regexp.MustCompile(`counter packets (\d+)`).FindSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("no counter in %s: %v\n%s", ns, err, out)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
}

// nftIn loads a ruleset into ns.
func nftIn(ns, ruleset string) error {
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft -f: %v: %s", err, out)
	}
	return nil
}
