package main

import (
	"github.com/airlockdev/airlock/bench/procstat"

	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

const acceptManifests = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"

type pullResult struct {
	Clients          int       `json:"clients"`
	WallSeconds      float64   `json:"wall_seconds"`
	ClientSeconds    []float64 `json:"client_seconds"` // sorted
	Bytes            int64     `json:"bytes"`          // blob bytes received, all clients
	Blobs            int       `json:"blobs"`          // blobs verified, all clients
	Errors           int       `json:"errors"`
	FirstError       string    `json:"first_error,omitempty"`
	CPUSeconds       float64   `json:"cpu_seconds"`          // of -pids, over the pull
	UpCPUSeconds     float64   `json:"upstream_cpu_seconds"` // of -upstream-pids, over the pull
	ClientCPUSeconds float64   `json:"client_cpu_seconds"`   // of this process (every client), over the pull
	PeakRSSBytes     int64     `json:"peak_rss_bytes"`       // sampled VmRSS, every 20 ms
	HWMBytes         int64     `json:"hwm_bytes"`            // VmHWM at the end: the peak over the process's life
}

func runPull(args []string) error {
	fs := flag.NewFlagSet("pull", flag.ExitOnError)
	base := fs.String("base", "", "registry base URL (http://127.0.0.1:PORT); several, comma-separated: client i uses the (i mod n)th (replicas, round-robin)")
	repo := fs.String("repo", "", "repository, as the client names it")
	ref := fs.String("ref", "v1", "tag or digest")
	ns := fs.String("ns", "", "send ?ns=HOST (mirror style)")
	want := fs.String("manifest-digest", "", "the manifest's expected digest")
	clients := fs.Int("c", 1, "concurrent clients, one connection each")
	pidList := fs.String("pids", "", "server PIDs whose CPU time and peak RSS to report")
	upList := fs.String("upstream-pids", "", "upstream PIDs whose CPU time to report")
	clkTck := fs.Float64("clk-tck", 100, "clock ticks per second (getconf CLK_TCK)")
	timeout := fs.Duration("timeout", 3*time.Minute, "give up after this long")
	_ = fs.Parse(args)
	if *base == "" || *repo == "" || *clients < 1 {
		return fmt.Errorf("-base, -repo and -c ≥ 1 are required")
	}
	var bases []string
	for b := range strings.SplitSeq(*base, ",") {
		if b = strings.TrimRight(strings.TrimSpace(b), "/"); b == "" {
			return fmt.Errorf("-base %q: empty URL in the list", *base)
		}
		bases = append(bases, b)
	}
	pids, err := procstat.ParsePIDs(*pidList)
	if err != nil {
		return err
	}
	upPIDs, err := procstat.ParsePIDs(*upList)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	cpu0, err := procstat.CPUSeconds(pids, *clkTck)
	if err != nil {
		return err
	}
	up0, err := procstat.CPUSeconds(upPIDs, *clkTck)
	if err != nil {
		return err
	}
	sctx, stopSampler := context.WithCancel(ctx)
	peak := make(chan int64, 1)
	go func() { peak <- procstat.PeakRSS(sctx, pids, 20*time.Millisecond) }()

	self0 := selfCPUSeconds()
	r := pullResult{Clients: *clients}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i := range *clients {
		wg.Go(func() {
			c := puller{hc: newClient(), base: bases[i%len(bases)], repo: *repo, ns: *ns}
			t0 := time.Now()
			n, blobs, err := c.pull(ctx, *ref, *want)
			d := time.Since(t0).Seconds()
			mu.Lock()
			defer mu.Unlock()
			r.ClientSeconds = append(r.ClientSeconds, d)
			r.Bytes += n
			r.Blobs += blobs
			if err != nil {
				r.Errors++
				if r.FirstError == "" {
					r.FirstError = err.Error()
				}
			}
		})
	}
	wg.Wait()
	r.WallSeconds = time.Since(start).Seconds()
	r.ClientCPUSeconds = selfCPUSeconds() - self0
	stopSampler()
	r.PeakRSSBytes = <-peak
	cpu1, err := procstat.CPUSeconds(pids, *clkTck)
	if err != nil {
		return err
	}
	r.CPUSeconds = cpu1 - cpu0
	up1, err := procstat.CPUSeconds(upPIDs, *clkTck)
	if err != nil {
		return err
	}
	r.UpCPUSeconds = up1 - up0
	for _, p := range pids {
		r.HWMBytes += procstat.Status(p, "VmHWM:")
	}
	slices.Sort(r.ClientSeconds)
	return emit(r)
}

// selfCPUSeconds is this process's user and system CPU time so far.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)).Seconds()
}

func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DisableCompression:  true,
		ReadBufferSize:      256 << 10,
		MaxIdleConnsPerHost: 1,
	}}
}

// puller is one client: one connection, requests in sequence.
type puller struct {
	hc             *http.Client
	base, repo, ns string
}

// pull GETs the manifest, then every blob it names (config first), each
// verified against its digest and size. It returns the blob bytes received.
func (p *puller) pull(ctx context.Context, ref, wantDigest string) (int64, int, error) {
	defer p.hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, manifestURL(p.base, p.repo, ref, p.ns), nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Accept", acceptManifests)
	resp, err := p.hc.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("get manifest: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	if err != nil {
		return 0, 0, fmt.Errorf("read manifest: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("get manifest: status %d: %s", resp.StatusCode, snippet(body))
	}
	if got := sha(body); wantDigest != "" && got != wantDigest {
		return 0, 0, fmt.Errorf("manifest digest %s, want %s", got, wantDigest)
	}
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return 0, 0, fmt.Errorf("parse manifest: %w", err)
	}
	var total int64
	buf := make([]byte, 256<<10)
	for i, d := range append([]descriptor{m.Config}, m.Layers...) {
		n, err := p.blob(ctx, d, buf)
		total += n
		if err != nil {
			return total, i, err
		}
	}
	return total, 1 + len(m.Layers), nil
}

func (p *puller) blob(ctx context.Context, d descriptor, buf []byte) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, blobURL(p.base, p.repo, d.Digest, p.ns), nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("get blob %s: %w", short(d.Digest), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, fmt.Errorf("get blob %s: status %d: %s", short(d.Digest), resp.StatusCode, snippet(b))
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, resp.Body, buf)
	if err != nil {
		return n, fmt.Errorf("read blob %s after %d bytes: %w", short(d.Digest), n, err)
	}
	if n != d.Size {
		return n, fmt.Errorf("blob %s: %d bytes, want %d", short(d.Digest), n, d.Size)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d.Digest {
		return n, fmt.Errorf("blob %s: content digest %s", short(d.Digest), short(got))
	}
	return n, nil
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
