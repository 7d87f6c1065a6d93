//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCacheWarmAndLs: `airlock cache warm` with a list of two images (one
// a multi-arch index: every platform is warmed) and one that the upstream
// does not have exits 1 and names the missing one; every blob was fetched
// from the upstream exactly once; `airlock cache ls` lists the two
// repositories; warming again fetches no blob again.
func TestCacheWarmAndLs(t *testing.T) {
	skipUnlessAirlock(t)
	const (
		indexRepo = "oss/v2/kubernetes/coredns"
		indexTag  = "v1.14.3-11"
		imageRepo = "oss/v2/azure/ip-masq-agent-v2"
		imageTag  = "v0.1.16-15"
		missing   = mcrHost + "/oss/v2/kubernetes/metrics-server:v0.8.0-21"
	)
	up := startUpstream(t)
	idx := buildMultiArch(t, 11411, 2, 512<<10)
	seedIndex(t, up, indexRepo, indexTag, idx.index)
	img := buildImage(t, "amd64", 1615, 2, 512<<10)
	want := seedImage(t, up, imageRepo, imageTag, img)
	want = append(want, imageBlobs(t, idx.amd64)...)
	want = append(want, imageBlobs(t, idx.arm64)...)
	seeded := up.blobGETs(t)
	al := startCacheAirlock(t, cacheOptions{upstream: up.upstreamURL()})

	list := filepath.Join(t.TempDir(), "images.txt")
	content := "# images a node needs\n" +
		mcrHost + "/" + indexRepo + ":" + indexTag + "\n" +
		mcrHost + "/" + imageRepo + ":" + imageTag + "\n" +
		missing + "\n"
	if err := os.WriteFile(list, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}

	warm := func(t *testing.T) string {
		t.Helper()
		start := time.Now()
		stdout, stderr, code := runAirlock(t, "cache", "warm", "--config", al.configPath, list)
		t.Logf("airlock cache warm (exit %d, %s):\n%s\nstderr:\n%s", code, time.Since(start).Round(time.Millisecond), tailLines(stdout, 20), stderr)
		if code != 1 {
			t.Errorf("airlock cache warm exit code = %d, want 1 (one image is missing)", code)
		}
		if !strings.Contains(stdout, "FAILED "+missing) {
			t.Errorf("airlock cache warm output does not name the missing image %s with FAILED", missing)
		}
		for _, ok := range []string{indexRepo, imageRepo} {
			if strings.Contains(stdout, "FAILED "+mcrHost+"/"+ok) {
				t.Errorf("airlock cache warm reports %s as failed", ok)
			}
		}
		if !strings.Contains(stdout, "warmed 2 of 3 images") {
			t.Errorf("airlock cache warm summary lacks %q", "warmed 2 of 3 images")
		}
		return stdout
	}

	t.Run("warm", func(t *testing.T) {
		warm(t)
		got := up.waitBlobGETs(t, want)
		t.Logf("upstream blob GETs:%s", sortedCounts(got))
		for _, d := range want {
			if n := got[d] - seeded[d]; n != 1 {
				t.Errorf("upstream GETs of %s = %d after warming, want exactly 1", d, n)
			}
		}
	})

	t.Run("ls", func(t *testing.T) {
		stdout, stderr, code := runAirlock(t, "cache", "ls", "--config", al.configPath)
		t.Logf("airlock cache ls (exit %d):\n%s%s", code, stdout, stderr)
		if code != 0 {
			t.Fatalf("airlock cache ls exit code = %d, want 0", code)
		}
		for _, repo := range []string{indexRepo, imageRepo} {
			if !strings.Contains(stdout, cacheTarget+"/"+repo) {
				t.Errorf("airlock cache ls does not list %s", cacheTarget+"/"+repo)
			}
		}
		stdout, _, code = runAirlock(t, "cache", "ls", "--json", "--config", al.configPath)
		var inv []struct {
			Repository string `json:"repository"`
			Tags       []struct {
				Tag string `json:"tag"`
			} `json:"tags"`
			Blobs int   `json:"blobs"`
			Bytes int64 `json:"bytes"`
		}
		if err := json.Unmarshal([]byte(stdout), &inv); err != nil || code != 0 {
			t.Fatalf("airlock cache ls --json: exit %d, %v: %s", code, err, stdout)
		}
		var repos []string
		for _, r := range inv {
			repos = append(repos, r.Repository)
			var tags []string
			for _, tg := range r.Tags {
				tags = append(tags, tg.Tag)
			}
			t.Logf("cache ls --json: %s tags %v, %d blobs, %s", r.Repository, tags, r.Blobs, mib(r.Bytes))
		}
		slices.Sort(repos)
		wantRepos := []string{cacheTarget + "/" + imageRepo, cacheTarget + "/" + indexRepo}
		if !slices.Equal(repos, wantRepos) {
			t.Errorf("airlock cache ls --json repositories = %v, want %v", repos, wantRepos)
		}
	})

	t.Run("warm again fetches nothing", func(t *testing.T) {
		before := up.blobGETs(t)
		warm(t)
		time.Sleep(300 * time.Millisecond)
		after := up.blobGETs(t)
		for _, d := range want {
			if after[d] != before[d] {
				t.Errorf("upstream GETs of %s went from %d to %d on the second warm, want no new fetch", d, before[d], after[d])
			}
		}
		t.Logf("%s", al.cacheMetrics(t))
	})
}

// runAirlock runs the airlock binary with args and returns stdout, stderr
// and the exit code.
func runAirlock(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, needAirlock(t), args...)
	cmd.Env = append(os.Environ(), "http_proxy=", "https_proxy=", "HTTP_PROXY=", "HTTPS_PROXY=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	}
	t.Fatalf("airlock %s: %v", strings.Join(args, " "), err)
	return "", "", -1
}
