package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// throttleBuf is the most one read moves before it pays its tokens: large,
// so the proxy costs two syscalls per chunk and little CPU, and small
// enough (2.5 ms at 100 MiB/s) that pacing stays smooth.
const throttleBuf = 256 << 10

// throttleStats is what a throttle printed when it stopped.
type throttleStats struct {
	Listen        string  `json:"listen"`
	Target        string  `json:"target"`
	RateBytes     float64 `json:"rate_bytes_per_second"`
	Conns         int64   `json:"conns"`
	BytesUp       int64   `json:"bytes_up"`   // client → target
	BytesDown     int64   `json:"bytes_down"` // target → client
	CPUSeconds    float64 `json:"cpu_seconds"`
	UptimeSeconds float64 `json:"uptime_seconds"`
}

// throttle is a TCP proxy whose two directions each draw on one bucket
// shared by all connections: one link, as a node's uplink is shared by
// every pull on it.
type throttle struct {
	target   string
	up, down *bucket
	log      *slog.Logger

	conns, bytesUp, bytesDown atomic.Int64

	mu   sync.Mutex
	open map[net.Conn]struct{}
	wg   sync.WaitGroup
}

func newThrottle(target string, rate, burst float64, log *slog.Logger) *throttle {
	return &throttle{
		target: target,
		up:     newBucket(rate, burst, time.Now),
		down:   newBucket(rate, burst, time.Now),
		log:    log,
		open:   map[net.Conn]struct{}{},
	}
}

// serve accepts on ln until ctx ends, then closes ln and every open
// connection and waits for their goroutines.
func (t *throttle) serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
		t.mu.Lock()
		for c := range t.open {
			c.Close()
		}
		t.mu.Unlock()
	}()
	defer t.wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		t.conns.Add(1)
		t.wg.Go(func() { t.handle(ctx, c) })
	}
}

// track adds c to the open set, or closes it when ctx has ended.
func (t *throttle) track(ctx context.Context, c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ctx.Err() != nil {
		c.Close()
		return false
	}
	t.open[c] = struct{}{}
	return true
}

func (t *throttle) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.open, c)
	t.mu.Unlock()
	c.Close()
}

// handle dials the target for client c (closing c when that fails, as a
// link to a host that is down would) and copies both ways.
func (t *throttle) handle(ctx context.Context, c net.Conn) {
	if !t.track(ctx, c) {
		return
	}
	defer t.untrack(c)
	var d net.Dialer
	u, err := d.DialContext(ctx, "tcp", t.target)
	if err != nil {
		t.log.Debug("dial target", "target", t.target, "err", err)
		return
	}
	if !t.track(ctx, u) {
		return
	}
	defer t.untrack(u)
	var wg sync.WaitGroup
	wg.Go(func() { t.pipe(u, c, t.up, &t.bytesUp) })
	t.pipe(c, u, t.down, &t.bytesDown)
	wg.Wait()
}

// pipe copies src to dst, paying n tokens of b before writing each chunk
// of n bytes; at src's EOF it half-closes dst, on an error both.
func (t *throttle) pipe(dst, src net.Conn, b *bucket, count *atomic.Int64) {
	if ok, eof := splicePipe(dst, src, b, count); ok {
		t.finish(dst, src, eof)
		return
	}
	buf := make([]byte, throttleBuf)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			b.pay(n)
			if _, err := dst.Write(buf[:n]); err != nil {
				t.finish(dst, src, false)
				return
			}
			count.Add(int64(n))
		}
		if rerr != nil {
			t.finish(dst, src, rerr == io.EOF)
			return
		}
	}
}

// finish ends one direction: at src's EOF it half-closes dst, so the peer
// sees the end of the stream and may still answer; on an error it closes
// both, which ends the other direction too.
func (t *throttle) finish(dst, src net.Conn, eof bool) {
	if eof {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
			return
		}
	}
	dst.Close()
	src.Close()
}

// runThrottle is the throttle subcommand: a TCP proxy on -listen that
// forwards to -target at -rate per direction, shared by all connections.
// It prints {"listen": …} once listening and its throttleStats on SIGTERM
// or SIGINT; with -check it only validates -rate.
func runThrottle(args []string) error {
	fs := flag.NewFlagSet("throttle", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	target := fs.String("target", "", "host:port to forward to")
	rateS := fs.String("rate", "", "throughput per direction, shared by all connections: 100MiB, 1GiB, 800Mbit, … per second")
	burstS := fs.String("burst", "", "bytes banked while idle (default: 10 ms of -rate, at least one read buffer)")
	verbose := fs.Bool("v", false, "log every failed dial")
	check := fs.Bool("check", false, "only parse -rate, print it in bytes per second and exit")
	_ = fs.Parse(args)
	if *rateS == "" {
		return fmt.Errorf("-rate is required")
	}
	rate, err := parseRate(*rateS)
	if err != nil {
		return err
	}
	if *check {
		return emit(map[string]float64{"rate_bytes_per_second": rate})
	}
	if *target == "" {
		return fmt.Errorf("-target is required")
	}
	burst := max(rate/100, throttleBuf)
	if *burstS != "" {
		if burst, err = parseRate(*burstS); err != nil {
			return fmt.Errorf("-burst: %w", err)
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	start := time.Now()
	if err := emit(map[string]string{"listen": ln.Addr().String()}); err != nil {
		ln.Close()
		return err
	}
	t := newThrottle(*target, rate, burst, log)
	serr := t.serve(ctx, ln)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	st := throttleStats{
		Listen: ln.Addr().String(), Target: *target, RateBytes: rate,
		Conns: t.conns.Load(), BytesUp: t.bytesUp.Load(), BytesDown: t.bytesDown.Load(),
		CPUSeconds:    time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)).Seconds(),
		UptimeSeconds: time.Since(start).Seconds(),
	}
	if err := emit(st); err != nil {
		return err
	}
	return serr
}
