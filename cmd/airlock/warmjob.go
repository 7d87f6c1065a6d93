package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/airlockdev/airlock/internal/cache"
	"github.com/airlockdev/airlock/internal/warm"
	"github.com/prometheus/client_golang/prometheus"
)

// warmJob is registry.warm: `airlock cache warm` run by serve itself every
// Every, on one replica at a time (cluster singleton job "cache-warm"). It
// pulls through the registry's handler in this process (no listener, no
// credentials: InternalPullHandler), so the cache fills as for a node.
type warmJob struct {
	cfg  cache.WarmConfig
	refs []warm.Ref
	h    http.Handler
	run  func(ctx context.Context, name string, interval time.Duration, fn func(context.Context) error)
	log  *slog.Logger
	runs *prometheus.CounterVec

	cancel context.CancelFunc
	done   chan struct{}
}

func newWarmJob(cfg cache.WarmConfig, h http.Handler, cw *clusterWatch, log *slog.Logger, reg prometheus.Registerer) (*warmJob, error) {
	j := &warmJob{cfg: cfg, h: h, run: cw.cl.RunSingleton, log: log, done: make(chan struct{}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_cache_warm_images_total",
			Help: "Images pulled by the scheduled warm (registry.warm), by result (ok, failed).",
		}, []string{"result"})}
	for _, img := range cfg.Images {
		r, err := warm.ParseRef(img)
		if err != nil { // validated already
			return nil, fmt.Errorf("registry.warm.images: %w", err)
		}
		j.refs = append(j.refs, r)
	}
	if reg != nil {
		reg.MustRegister(j.runs)
	}
	return j, nil
}

func (j *warmJob) Start(ctx context.Context) error {
	ctx, j.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer close(j.done)
		j.run(ctx, "cache-warm", j.cfg.Every, j.once)
	}()
	return nil
}

// once pulls every image; an image that fails is logged and counted, and
// the next run tries it again.
func (j *warmJob) once(ctx context.Context) error {
	start := time.Now()
	res := warm.Run(ctx, j.refs, warm.Options{
		Base:     "http://airlock.internal",
		Client:   &http.Client{Transport: handlerTransport{j.h}},
		Platform: j.cfg.Platform,
	})
	failed := 0
	var bytes int64
	for _, r := range res {
		if r.Err != nil {
			failed++
			j.runs.WithLabelValues("failed").Inc()
			j.log.Warn("scheduled warm: image failed", "image", r.Ref.String(), "err", r.Err.Error())
			continue
		}
		j.runs.WithLabelValues("ok").Inc()
		bytes += r.Bytes
	}
	j.log.Info("scheduled warm done", "images", len(res), "failed", failed, "bytes", bytes,
		"duration_ms", time.Since(start).Milliseconds(), "next_in", j.cfg.Every.String())
	if failed > 0 {
		return fmt.Errorf("%d of %d images failed", failed, len(res))
	}
	return nil
}

func (j *warmJob) Shutdown(ctx context.Context) error {
	if j.cancel == nil {
		return nil
	}
	j.cancel()
	select {
	case <-j.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (j *warmJob) Failed() <-chan error { return nil }

// handlerTransport is an http.RoundTripper that serves each request with h
// in this process, streaming the response body through a pipe (a blob of
// gigabytes is never held in memory).
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, body: pw, ready: make(chan struct{})}
	go func() {
		defer func() {
			w.writeHeader(http.StatusOK) // a handler that wrote nothing
			pw.Close()
		}()
		t.h.ServeHTTP(w, req)
	}()
	select {
	case <-w.ready:
	case <-req.Context().Done():
		pr.CloseWithError(req.Context().Err())
		return nil, req.Context().Err()
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", w.code, http.StatusText(w.code)), StatusCode: w.code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.sent, Body: pr, ContentLength: -1, Request: req,
	}, nil
}

// pipeWriter is the http.ResponseWriter of handlerTransport.
type pipeWriter struct {
	header http.Header
	body   *io.PipeWriter
	once   sync.Once
	ready  chan struct{}
	code   int
	sent   http.Header // the header as of WriteHeader
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(code int) { w.writeHeader(code) }

func (w *pipeWriter) writeHeader(code int) {
	w.once.Do(func() {
		w.code, w.sent = code, w.header.Clone()
		close(w.ready)
	})
}

func (w *pipeWriter) Write(b []byte) (int, error) {
	w.writeHeader(http.StatusOK)
	return w.body.Write(b)
}

// Flush is a no-op: every Write already reaches the reader.
func (w *pipeWriter) Flush() {}
