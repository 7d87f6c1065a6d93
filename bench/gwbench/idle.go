package main

import (
	"github.com/airlockdev/airlock/bench/procstat"

	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

type idleResult struct {
	Requested      int     `json:"requested"`
	Tunnels        int     `json:"tunnels"` // established and kept open
	Stopped        string  `json:"stopped,omitempty"`
	RSSBeforeBytes int64   `json:"rss_before_bytes"`
	RSSBytes       int64   `json:"rss_bytes"`
	PerTunnelBytes float64 `json:"per_tunnel_bytes"`
	FDsBefore      int     `json:"fds_before"`
	FDs            int     `json:"fds"`
	FDsPerTunnel   float64 `json:"fds_per_tunnel"`
}

func runIdle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	addr := fs.String("addr", "", "proxy address")
	target := fs.String("connect", "", "CONNECT target host:port (an echo server); empty: plain TCP to -addr")
	n := fs.Int("n", 10000, "tunnels")
	par := fs.Int("par", 32, "tunnels opened concurrently")
	settle := fs.Duration("settle", 2*time.Second, "wait after the last tunnel before reading VmRSS")
	pidList := fs.String("pids", "", "PIDs whose VmRSS and open descriptors are summed")
	fdLimit := fs.Int("fd-limit", 0, "stop opening tunnels before the PIDs' open descriptors come near this; 0: no check")
	hold := fs.Duration("hold", 0, "keep the tunnels open this long after printing the result (to profile the proxy)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pids, err := procstat.ParsePIDs(*pidList)
	if err != nil {
		return err
	}
	before, err := procstat.RSS(pids)
	if err != nil {
		return err
	}
	fds0, err := procstat.FDCount(pids)
	if err != nil {
		return err
	}
	conns := make([]*net.TCPConn, *n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		stop     atomic.Bool
	)
	next := make(chan int)
	for range *par {
		wg.Go(func() {
			buf := make([]byte, 1)
			for i := range next {
				c, err := dialTunnel(*addr, *target, 10*time.Second)
				if err == nil {
					// One byte through proves the tunnel reaches the target.
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					if _, err = c.Write([]byte{'x'}); err == nil {
						_, err = io.ReadFull(c, buf)
					}
					_ = c.SetDeadline(time.Time{})
				}
				if err != nil {
					if c != nil {
						c.Close()
					}
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("tunnel %d: %w", i, err)
					}
					mu.Unlock()
					stop.Store(true)
					continue
				}
				conns[i] = c
			}
		})
	}
	stopped := ""
	for i := range *n {
		if stop.Load() {
			break
		}
		if *fdLimit > 0 && i%64 == 0 {
			// Room for the tunnels in flight at 8 descriptors each.
			f, err := procstat.FDCount(pids)
			if err == nil && f+8*(*par+64) > *fdLimit {
				stopped = fmt.Sprintf("the proxy holds %d descriptors, limit %d", f, *fdLimit)
				break
			}
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		stopped = firstErr.Error()
	}
	time.Sleep(*settle)
	after, err := procstat.RSS(pids)
	if err != nil {
		return err
	}
	fds, err := procstat.FDCount(pids)
	if err != nil {
		return err
	}
	r := idleResult{Requested: *n, Stopped: stopped, RSSBeforeBytes: before, RSSBytes: after, FDsBefore: fds0, FDs: fds}
	for _, c := range conns {
		if c != nil {
			r.Tunnels++
		}
	}
	if r.Tunnels == 0 {
		return fmt.Errorf("no tunnel established: %s", stopped)
	}
	r.PerTunnelBytes = float64(after-before) / float64(r.Tunnels)
	r.FDsPerTunnel = float64(fds-fds0) / float64(r.Tunnels)
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return err
	}
	time.Sleep(*hold)
	return nil
}
