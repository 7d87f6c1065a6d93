// Command failprobe is the client half of bench/failover.sh: it measures
// what a client that knows two replica addresses, and tries them in order
// the way resolv.conf's nameserver lines and containerd's mirror list are
// tried, sees while one replica is killed.
//
//	failprobe -kind dns  -servers 127.0.0.1:P1,127.0.0.1:P2 -name N [-timeout 5s]
//	failprobe -kind http -servers http://127.0.0.1:P1,http://127.0.0.1:P2 -path /v2/ [-timeout 5s]
//
// Every -interval (50 ms) it starts one probe: the first server, and when
// that attempt fails (an error, a timeout of -timeout, a DNS answer that is
// not NOERROR with an address, an HTTP status other than 200) the next one,
// and so on. A probe succeeds when one server answered. It runs for
// -duration, then prints one JSON object: the probes, how many failed (no
// server answered), the longest gap between two successful probes'
// completions (the outage a client in a loop sees), when that gap started
// relative to the start, and how many probes each server answered.
//
// DNS probes use a connected UDP socket per attempt: a server that is gone
// on loopback answers with ICMP port unreachable, which the socket reports
// at once (ECONNREFUSED), as glibc's resolver sees it and moves on. HTTP
// probes reuse one keep-alive connection per server, as containerd does.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

type result struct {
	Kind          string  `json:"kind"`
	Probes        int     `json:"probes"`
	Failed        int     `json:"failed"`    // no server answered
	Fallbacks     int     `json:"fallbacks"` // answered by a server after the first
	MaxGapMS      float64 `json:"max_gap_ms"`
	MaxGapStartMS float64 `json:"max_gap_start_ms"` // from the start
	SlowestMS     float64 `json:"slowest_probe_ms"`
	IntervalMS    float64 `json:"interval_ms"`
	TimeoutMS     float64 `json:"timeout_ms"`
	PerServer     []int   `json:"per_server"`
	FirstError    string  `json:"first_error,omitempty"`
}

func main() {
	kind := flag.String("kind", "", "dns or http")
	servers := flag.String("servers", "", "comma-separated: HOST:PORT (dns) or base URLs (http), in the order tried")
	name := flag.String("name", "", "dns: the name to ask for (A)")
	path := flag.String("path", "/v2/", "http: the path to GET")
	interval := flag.Duration("interval", 50*time.Millisecond, "time between probe starts")
	timeout := flag.Duration("timeout", 5*time.Second, "per attempt (one server)")
	duration := flag.Duration("duration", 5*time.Second, "how long to probe")
	flag.Parse()
	list := strings.Split(*servers, ",")
	if *kind != "dns" && *kind != "http" || *servers == "" || *kind == "dns" && *name == "" {
		fmt.Fprintln(os.Stderr, "failprobe: -kind dns|http, -servers and (dns) -name are required")
		os.Exit(2)
	}
	var try func(ctx context.Context, i int) error
	switch *kind {
	case "dns":
		try = func(ctx context.Context, i int) error { return dnsQuery(ctx, list[i], *name, *timeout) }
	case "http":
		clients := make([]*http.Client, len(list))
		for i := range clients {
			clients[i] = &http.Client{Timeout: *timeout, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}
		}
		try = func(ctx context.Context, i int) error {
			return httpGet(ctx, clients[i], strings.TrimRight(list[i], "/")+*path)
		}
	}
	r := run(try, len(list), *interval, *duration)
	r.Kind, r.IntervalMS, r.TimeoutMS = *kind, ms(*interval), ms(*timeout)
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// run starts a probe every interval for duration (probes overlap when one
// takes longer than interval, as independent lookups on a node do) and
// waits for the last one.
func run(try func(context.Context, int) error, n int, interval, duration time.Duration) result {
	r := result{PerServer: make([]int, n)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	var ends []time.Duration // completions of successful probes
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for time.Since(start) < duration {
		wg.Go(func() {
			t0 := time.Now()
			ok, served, err := -1, 0, error(nil)
			for i := range n {
				if err = try(context.Background(), i); err == nil {
					ok, served = i, i
					break
				}
			}
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			r.Probes++
			r.SlowestMS = max(r.SlowestMS, ms(d))
			if ok < 0 {
				r.Failed++
				if r.FirstError == "" {
					r.FirstError = err.Error()
				}
				return
			}
			r.PerServer[served]++
			if served > 0 {
				r.Fallbacks++
			}
			ends = append(ends, time.Since(start))
		})
		<-tick.C
	}
	wg.Wait()
	slices.Sort(ends)
	prev := time.Duration(0)
	for _, e := range ends {
		if g := e - prev; ms(g) > r.MaxGapMS {
			r.MaxGapMS, r.MaxGapStartMS = ms(g), ms(prev)
		}
		prev = e
	}
	return r
}

func httpGet(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return nil
}

// dnsQuery asks server for name's A records over UDP and wants NOERROR
// with at least one answer.
func dnsQuery(ctx context.Context, server, name string, timeout time.Duration) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return err
	}
	defer c.Close()
	q, id, err := buildQuery(name)
	if err != nil {
		return err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(q); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if n < 12 || binary.BigEndian.Uint16(buf) != id {
			continue // not ours
		}
		rcode := buf[3] & 0x0f
		ancount := binary.BigEndian.Uint16(buf[6:])
		if rcode != 0 || ancount == 0 {
			return fmt.Errorf("%s: rcode %d, %d answers", server, rcode, ancount)
		}
		return nil
	}
}

func buildQuery(name string) ([]byte, uint16, error) {
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	q := binary.BigEndian.AppendUint16(nil, id)
	q = append(q, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD; one question
	for l := range strings.SplitSeq(strings.TrimSuffix(name, "."), ".") {
		if l == "" || len(l) > 63 {
			return nil, 0, errors.New("bad name " + name)
		}
		q = append(q, byte(len(l)))
		q = append(q, l...)
	}
	q = append(q, 0, 0, 1, 0, 1) // root, A, IN
	return q, id, nil
}
