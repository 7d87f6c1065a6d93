package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/airlockdev/airlock/internal/admin"
	"github.com/airlockdev/airlock/internal/cluster"
	"github.com/airlockdev/airlock/internal/config"
	"github.com/prometheus/client_golang/prometheus"
)

// clusterWatch is the cluster as a unit: Start connects to Redis (never
// failing because Redis is down) and keeps /readyz's degraded lines true
// to the cluster: Redis unreachable (coordination is local), or a live
// replica whose config or policy differs from this one's.
type clusterWatch struct {
	cl  *cluster.Cluster
	adm *admin.Server

	once sync.Once
	stop chan struct{}
	done chan struct{}
}

// checkEvery is how often clusterWatch copies the cluster's state to /readyz.
const checkEvery = time.Second

func newClusterWatch(cfg *config.File, adm *admin.Server, log *slog.Logger, reg prometheus.Registerer) (*clusterWatch, error) {
	cl, err := cluster.New(cfg.Cluster, cluster.Deps{Logger: log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	w := &clusterWatch{cl: cl, adm: adm, stop: make(chan struct{}), done: make(chan struct{})}
	w.setVersions(cfg)
	return w, nil
}

// setVersions publishes the hashes of what replicas must agree on.
func (w *clusterWatch) setVersions(cfg *config.File) {
	c, p := configHashes(cfg)
	w.cl.SetVersions(c, p, version)
}

func (w *clusterWatch) Start(ctx context.Context) error {
	if err := w.cl.Start(ctx); err != nil {
		return err
	}
	go func() {
		defer close(w.done)
		t := time.NewTicker(checkEvery)
		defer t.Stop()
		for {
			w.check()
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

func (w *clusterWatch) check() {
	degraded, why := w.cl.Degraded()
	if !degraded {
		why = ""
	}
	w.adm.SetDegraded("cluster", why)
	mismatch, which := w.cl.Mismatch()
	if !mismatch {
		which = ""
	}
	w.adm.SetDegraded("cluster versions", which)
}

func (w *clusterWatch) Shutdown(ctx context.Context) error {
	w.once.Do(func() { close(w.stop) })
	select {
	case <-w.done:
	case <-ctx.Done():
	}
	return w.cl.Shutdown(ctx)
}

func (w *clusterWatch) Failed() <-chan error { return nil }

// perReplica are the config keys that may differ between replicas of one
// cluster without a mismatch: listen addresses (each replica binds its own),
// the replica's name, its own log level, what `node apply` and `verify` do
// on the host, and the admin listener.
var perReplica = map[string]bool{"Log": true, "Admin": true, "Node": true, "Verify": true, "Policy": true}

// configHashes hashes what every replica must agree on: the config without
// the per-replica keys (any key ending in "Listen", the cluster name and
// advertise URL, the
// storage's local scratch and local cache, the sections in perReplica) and,
// separately, the policy. Both are SHA-256 of
// the decoded, defaulted config as JSON, so formatting, comments and key
// order in the file do not count.
func configHashes(cfg *config.File) (configHash, policyHash string) {
	var all map[string]any
	b, err := json.Marshal(cfg)
	if err == nil {
		err = json.Unmarshal(b, &all)
	}
	if err != nil { // a config type JSON cannot encode: never equal to a peer's
		return "unhashable: " + err.Error(), ""
	}
	for k := range perReplica {
		delete(all, k)
	}
	if c, ok := all["Cluster"].(map[string]any); ok {
		delete(c, "Name")
		delete(c, "Advertise") // this replica's own address
	}
	dropListen(all)
	if r, ok := all["Registry"].(map[string]any); ok {
		if st, ok := r["Storage"].(map[string]any); ok {
			delete(st, "Scratch") // local directories of this replica
			delete(st, "LocalCache")
		}
	}
	pb, _ := json.Marshal(cfg.Policy)
	return hashJSON(all), hashBytes(pb)
}

// dropListen removes every key ending in "Listen" (Listen, ProxyListen, …).
func dropListen(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if strings.HasSuffix(k, "Listen") {
				delete(v, k)
				continue
			}
			dropListen(e)
		}
	case []any:
		for _, e := range v {
			dropListen(e)
		}
	}
}

func hashJSON(v any) string {
	b, _ := json.Marshal(v) // maps marshal with sorted keys
	return hashBytes(b)
}

func hashBytes(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// jobLease takes the cluster lease of a singleton job run by a command
// (`registry gc --delete`) so that no replica or other command runs it at
// the same time. Without cluster.redis there is nothing to take. When Redis
// does not answer within a few seconds the job goes on with a warning (the
// jobs are safe to run concurrently; the lease only saves duplicate work).
func jobLease(cfg *config.File, name string, stderr io.Writer) (release func(), err error) {
	if !redisConfigured(cfg) {
		return func() {}, nil
	}
	cl, err := cluster.New(cfg.Cluster, cluster.Deps{})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := cl.Start(ctx); err != nil {
		return nil, err
	}
	stop := func() {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		cl.Shutdown(sctx)
	}
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if down, _ := cl.Degraded(); !down {
			break
		}
		if time.Now().After(deadline) {
			_, why := cl.Degraded()
			fmt.Fprintf(stderr, "warning: %s; running %s without the cluster lease (another replica may run it too)\n", why, name)
			break
		}
	}
	l, ok, err := cl.TryLease(ctx, "job:"+name, time.Minute)
	if err != nil || !ok {
		stop()
		if err == nil {
			err = fmt.Errorf("another replica or command is running %s (cluster lease job:%s is held); try again when it ends", name, name)
		}
		return nil, err
	}
	return func() { l.Release(); stop() }, nil
}

// redisConfigured reports whether replicas coordinate through Redis.
func redisConfigured(cfg *config.File) bool { return cfg.Cluster.Redis.Configured() }

// replicaName is cluster.name, or the host name.
func replicaName(cfg *config.File) (string, error) {
	if cfg.Cluster.Name != "" {
		return cfg.Cluster.Name, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("cluster: no cluster.name and no host name to default to (%w): set cluster.name", err)
	}
	return h, nil
}
