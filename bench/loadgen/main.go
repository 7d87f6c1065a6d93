// Command loadgen downloads one URL with N concurrent HTTP/1.1 keep-alive
// clients for a fixed duration and reports, as one JSON line, the bytes
// received per second and, for the server PIDs given, the CPU seconds they
// used (utime+stime from /proc/PID/stat, before and after) and their peak
// resident memory (VmRSS from /proc/PID/status, summed over the PIDs and
// sampled every 50 ms during the run).
//
// It is the blob-GET load generator of bench/registry.sh. Bytes are counted
// as they arrive, so downloads still running at the deadline count for
// what they delivered; every completed response must be 200 with the
// expected length (-size), or it counts as an error.
//
// With -splice (the default) each client is a minimal HTTP/1.1 keep-alive
// client that moves the body from the socket to /dev/null with splice(2),
// so the load generator spends little CPU per byte and the server, not the
// client, is what limits throughput. -splice=false reads bodies through
// net/http into a buffer, like an ordinary client.
package main

import (
	"github.com/airlockdev/airlock/bench/procstat"

	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	URL          string         `json:"url"`
	Clients      int            `json:"clients"`
	Seconds      float64        `json:"seconds"`
	Bytes        int64          `json:"bytes"`
	Requests     int64          `json:"requests"`
	Errors       int64          `json:"errors"`
	FirstError   string         `json:"first_error,omitempty"`
	BytesPerSec  float64        `json:"bytes_per_sec"`
	CPUSeconds   float64        `json:"cpu_seconds"`
	CPUPerGiB    float64        `json:"cpu_seconds_per_gib"`
	PeakRSSBytes int64          `json:"peak_rss_bytes"`
	Statuses     map[string]int `json:"statuses"`
}

func main() {
	url := flag.String("url", "", "URL to GET")
	clients := flag.Int("c", 1, "concurrent clients (one connection each)")
	dur := flag.Duration("d", 5*time.Second, "duration of the measurement")
	size := flag.Int64("size", -1, "expected body length; -1: any")
	pidList := flag.String("pids", "", "comma-separated server PIDs to account CPU and RSS for")
	clkTck := flag.Float64("clk-tck", 100, "clock ticks per second of /proc/PID/stat (getconf CLK_TCK)")
	warm := flag.Int("warm", 1, "full GETs before the measurement (page cache, connections)")
	useSplice := flag.Bool("splice", true, "raw HTTP/1.1 client splicing bodies to /dev/null")
	flag.Parse()
	if *url == "" || *clients < 1 {
		fmt.Fprintln(os.Stderr, "usage: loadgen -url URL [-c N] [-d DURATION] [-size N] [-pids P1,P2] [-clk-tck 100]")
		os.Exit(2)
	}
	pids, err := procstat.ParsePIDs(*pidList)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(2)
	}
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: *clients,
		MaxConnsPerHost:     *clients,
		DisableCompression:  true,
		ReadBufferSize:      256 << 10,
	}
	hc := &http.Client{Transport: tr}
	for range *warm {
		if _, _, err := get(context.Background(), hc, *url, *size, make([]byte, 256<<10), nil); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: warm-up GET %s: %v\n", *url, err)
			os.Exit(1)
		}
	}

	var (
		bytes    atomic.Int64
		requests atomic.Int64
		errs     atomic.Int64
		mu       sync.Mutex
		statuses = map[string]int{}
		firstErr string
	)
	cpu0, err := procstat.CPUSeconds(pids, *clkTck)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	// The sampler records peak RSS during the run and the CPU time at the
	// deadline, when the byte count stops too.
	type end struct {
		peak int64
		cpu  float64
		err  error
	}
	ended := make(chan end, 1)
	go func() {
		p := procstat.PeakRSS(ctx, pids, 50*time.Millisecond)
		c, err := procstat.CPUSeconds(pids, *clkTck)
		ended <- end{p, c, err}
	}()
	start := time.Now()
	deadline, _ := ctx.Deadline()
	var wg sync.WaitGroup
	for range *clients {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			var sc *spliceClient
			if *useSplice {
				var err error
				if sc, err = newSpliceClient(*url, deadline); err != nil {
					fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
					os.Exit(1)
				}
				defer sc.close()
			}
			for ctx.Err() == nil {
				var status int
				var err error
				if sc != nil {
					status, err = sc.get(*size, &bytes)
				} else {
					status, _, err = get(ctx, hc, *url, *size, buf, &bytes)
				}
				if ctx.Err() != nil || !time.Now().Before(deadline) {
					return // cut by the deadline: its bytes count, the request does not
				}
				mu.Lock()
				statuses[strconv.Itoa(status)]++
				if err != nil && firstErr == "" {
					firstErr = err.Error()
				}
				mu.Unlock()
				if err != nil {
					errs.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				requests.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := deadline.Sub(start).Seconds()
	e := <-ended
	if e.err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", e.err)
		os.Exit(1)
	}
	r := result{
		URL: *url, Clients: *clients, Seconds: elapsed,
		Bytes: bytes.Load(), Requests: requests.Load(), Errors: errs.Load(), FirstError: firstErr,
		CPUSeconds: e.cpu - cpu0, PeakRSSBytes: e.peak, Statuses: statuses,
	}
	r.BytesPerSec = float64(r.Bytes) / elapsed
	if r.Bytes > 0 {
		r.CPUPerGiB = r.CPUSeconds / (float64(r.Bytes) / (1 << 30))
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		os.Exit(1)
	}
}

// get downloads url once, adding every chunk read to counter (when not
// nil). It returns the status and body length.
func get(ctx context.Context, hc *http.Client, url string, size int64, buf []byte, counter *atomic.Int64) (int, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		n += int64(k)
		if counter != nil {
			counter.Add(int64(k))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return resp.StatusCode, n, err
		}
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, n, fmt.Errorf("status %d", resp.StatusCode)
	}
	if size >= 0 && n != size {
		return resp.StatusCode, n, fmt.Errorf("body of %d bytes, want %d", n, size)
	}
	return resp.StatusCode, n, nil
}
