package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlockdev/airlock/internal/admin"
	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/registry"
	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/storage/azblob"
	"github.com/airlockdev/airlock/internal/storage/s3"
)

// openStorage opens the registry's store where registry.storage says: a
// directory, an Azure Blob Storage container or an S3 bucket. obs (may be
// nil) sees every request to object storage.
func openStorage(ctx context.Context, sc registry.StorageConfig, opt blobstore.Options, obs storage.Observer, log *slog.Logger) (*blobstore.Store, error) {
	u, err := sc.Location()
	if err != nil {
		return nil, fmt.Errorf("registry storage: %w", err)
	}
	var drv storage.Driver
	switch u.Scheme {
	case "file":
		return blobstore.Open(u.Path, opt)
	case "azblob":
		d, derr := azblob.Open(ctx, u, azblob.Options{Observer: obs, Logger: log})
		if d != nil {
			drv = d
		}
		err = derr
	case "s3":
		d, derr := s3.Open(ctx, u, s3.Options{Observer: obs, Logger: log})
		if d != nil {
			drv = d
		}
		err = derr
	}
	if err != nil {
		if drv == nil || !errors.Is(err, storage.ErrStorageUnavailable) {
			return nil, fmt.Errorf("registry storage: %w", err)
		}
		// Start anyway: /readyz says why, and requests fail fast until the
		// storage answers.
		log.Warn("registry storage unreachable at start; serving once it answers", "storage", drv.String(), "err", err)
	}
	opt.Scratch = sc.Scratch
	opt.LocalCacheMaxBytes = int64(sc.LocalCache.MaxSize)
	opt.LocalCacheDir = sc.LocalCache.Path
	return blobstore.OpenDriver(drv, opt)
}

// storageMetrics records every request to object storage.
type storageMetrics struct {
	requests *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newStorageMetrics(reg prometheus.Registerer) *storageMetrics {
	m := &storageMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_storage_requests_total",
			Help: "Requests sent to the registry's object storage, by operation and result (ok, an HTTP status, or error).",
		}, []string{"op", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_storage_bytes_total",
			Help: "Bytes sent to (direction=out) and received from (direction=in) the registry's object storage.",
		}, []string{"direction"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "airlock_storage_request_duration_seconds",
			Help:    "Time from sending a storage request to the end of its response body, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"op"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.bytes, m.latency)
	}
	return m
}

func (m *storageMetrics) observe(op, result string, sent, received int64, d time.Duration) {
	m.requests.WithLabelValues(op, result).Inc()
	m.bytes.WithLabelValues("out").Add(float64(sent))
	m.bytes.WithLabelValues("in").Add(float64(received))
	m.latency.WithLabelValues(op).Observe(d.Seconds())
}

// storageWatch keeps /readyz true to the storage: it pings it at start
// and every interval, and marks "storage reachable" not ready, with the
// reason, while a ping fails. (Its own unit, "storage", is marked ready by
// the lifecycle once started; the check is a separate entry.)
type storageWatch struct {
	bs       *blobstore.Store
	adm      *admin.Server
	log      *slog.Logger
	interval time.Duration

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func newStorageWatch(bs *blobstore.Store, adm *admin.Server, log *slog.Logger) *storageWatch {
	return &storageWatch{bs: bs, adm: adm, log: log, interval: 5 * time.Second,
		stop: make(chan struct{}), done: make(chan struct{})}
}

func (w *storageWatch) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.bs.Ping(ctx); err != nil {
		w.adm.SetReady("storage reachable", err.Error()) // names the storage
		w.log.Warn("storage check failed", "storage", w.bs.Location(), "err", err)
		return
	}
	w.adm.SetReady("storage reachable", "")
}

// Start checks once (a storage that is down does not stop airlock from
// starting: /readyz says why) and then keeps checking.
func (w *storageWatch) Start(ctx context.Context) error {
	w.check(ctx)
	go func() {
		defer close(w.done)
		t := time.NewTicker(w.interval)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				w.check(context.Background())
			}
		}
	}()
	return nil
}

func (w *storageWatch) Shutdown(ctx context.Context) error {
	w.once.Do(func() { close(w.stop) })
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *storageWatch) Failed() <-chan error { return nil }

// redirector is the registry's Redirect for registry.storage.redirect: a
// signed URL for a blob the storage holds (one stat first, so a blob not
// there yet — a cache miss — streams and fills as usual). nil when off.
func redirector(sc registry.StorageConfig, bs *blobstore.Store) func(context.Context, oci.Digest) (string, error) {
	if !sc.Redirect {
		return nil
	}
	ttl := sc.EffectiveRedirectTTL()
	return func(ctx context.Context, d oci.Digest) (string, error) {
		if _, err := bs.Stat(d); err != nil {
			return "", err
		}
		return bs.SignedURL(ctx, d, ttl)
	}
}
