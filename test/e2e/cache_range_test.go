//go:build e2e

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestCacheRangeOnMiss is the security review's reproduction with curl
// against the built binary: Range requests on a cold blob whose upstream
// serves wrong bytes (one flipped in the middle, the body spread over about
// a second). A range that stops before the blob's end is answered only from
// verified content — an OCI error here, never a 206; one that reaches the
// end streams and is cut (curl fails); nothing is cached. Once the upstream
// serves the right bytes, the same ranges answer 206 with them.
func TestCacheRangeOnMiss(t *testing.T) {
	skipUnlessAirlock(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	const (
		repo = "oss/v2/kubernetes/pause"
		tag  = "3.10"
	)
	img := buildImage(t, "amd64", 2160, 1, 8<<20)
	up := newFakeUpstream(t, repo, tag, img)
	layer := imageBlobs(t, img)[1]
	blob := up.blobs[layer]
	size, mid := len(blob), len(blob)/2
	al := startCacheAirlock(t, cacheOptions{upstream: up.url})
	url := al.url("/v2/" + cacheTarget + "/" + repo + "/blobs/" + layer)
	t.Logf("layer %s: %s, byte %d flipped when corrupt", shortDigest(layer), mib(int64(size)), mid)

	ranges := []rangeCase{
		{name: "first 100 bytes", arg: "0-99", off: 0, n: 100},
		{name: "100 bytes around the flipped one", arg: fmt.Sprintf("%d-%d", mid-50, mid+49), off: mid - 50, n: 100},
		{name: "from byte 100 to the end", arg: "100-", off: 100, n: size - 100, reachesEnd: true},
		{name: "last 100 bytes", arg: "-100", off: size - 100, n: 100, reachesEnd: true},
	}

	t.Run("corrupt upstream", func(t *testing.T) {
		up.corrupt(layer)
		gets := up.gets(layer)
		// All at once: the first starts the fill, the others join it.
		res := curlAll(t, url, ranges)
		for i, r := range ranges {
			c := res[i]
			t.Logf("curl -r %s (%s): %s", r.arg, r.name, c)
			clean := c.exit == 0 && c.status == 206
			switch {
			case clean:
				t.Errorf("curl -r %s of a blob the upstream corrupts = 206, %d bytes, exit 0; want an error", r.arg, len(c.body))
			case !r.reachesEnd && c.status != 503:
				t.Errorf("curl -r %s of a blob the upstream corrupts = %d, want 503 UNAVAILABLE (a range short of the end waits for the verification)", r.arg, c.status)
			case !r.reachesEnd && !bytes.Contains(c.body, []byte("nothing was cached")):
				t.Errorf("curl -r %s: error body %q, want it to say nothing was cached", r.arg, c.body)
			}
		}
		if n := up.gets(layer) - gets; n != 1 {
			t.Errorf("upstream GETs of the layer for %d concurrent ranges = %d, want 1", len(ranges), n)
		}
		if p, ok := al.storedBlobs(t)[layer]; ok {
			t.Errorf("storage holds %s under the corrupt layer's digest", p)
		}
	})

	t.Run("good upstream", func(t *testing.T) {
		up.corrupt("")
		gets := up.gets(layer)
		res := curlAll(t, url, ranges)
		for i, r := range ranges {
			c := res[i]
			t.Logf("curl -r %s (%s): %s", r.arg, r.name, c)
			if c.exit != 0 || c.status != 206 || !bytes.Equal(c.body, blob[r.off:r.off+r.n]) {
				t.Errorf("curl -r %s = %d, %d bytes, exit %d (equal to the blob's bytes %d..%d: %v); want 206 and those bytes",
					r.arg, c.status, len(c.body), c.exit, r.off, r.off+r.n-1, bytes.Equal(c.body, blob[r.off:r.off+r.n]))
			}
		}
		if n := up.gets(layer) - gets; n != 1 {
			t.Errorf("upstream GETs of the layer for %d concurrent ranges = %d, want 1", len(ranges), n)
		}
		if !al.eventuallyStored(t, layer) {
			t.Errorf("layer %s not stored after a good fill", shortDigest(layer))
		}
	})
}

// curlResult is what curl reported for one request.
// rangeCase is one Range request of the test and what it covers.
type rangeCase struct {
	name       string
	arg        string // curl -r
	off, n     int
	reachesEnd bool
}

// curlAll asks every range at once (the first starts the fill, the
// others join it) and returns the results in the order of ranges.
func curlAll(t *testing.T, url string, ranges []rangeCase) []curlResult {
	res := make([]curlResult, len(ranges))
	var wg sync.WaitGroup
	for i, r := range ranges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = curlRange(t, url, r.arg)
		}()
	}
	wg.Wait()
	return res
}

type curlResult struct {
	status int
	body   []byte
	exit   int
	stderr string
}

func (c curlResult) String() string {
	return fmt.Sprintf("%d, %d bytes, curl exit %d %s", c.status, len(c.body), c.exit, strings.TrimSpace(c.stderr))
}

// curlRange runs curl -r arg against url (loopback, no proxy) and returns
// the status, the body and curl's exit code.
func curlRange(t *testing.T, url, arg string) curlResult {
	t.Helper()
	out := filepath.Join(t.TempDir(), "body")
	cmd := exec.Command("curl", "-sS", "--noproxy", "*", "--max-time", "60", "-o", out, "-w", "%{http_code}", "-r", arg, url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var r curlResult
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.exit = ee.ExitCode()
	case err != nil:
		t.Fatalf("curl: %v", err)
	}
	fmt.Sscanf(stdout.String(), "%d", &r.status)
	r.body, _ = os.ReadFile(out)
	r.stderr = stderr.String()
	return r
}
