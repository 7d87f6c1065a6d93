package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Peer is another live replica's version record.
type Peer struct {
	Name   string `json:"name"`
	Config string `json:"config"` // config hash
	Policy string `json:"policy"` // policy hash
	Binary string `json:"binary"` // airlock version
}

type versionRecord = Peer

// maxRecord bounds a version record read from Redis.
const maxRecord = 4096

// parseVersionRecord decodes a version record another replica wrote.
func parseVersionRecord(b []byte) (Peer, error) {
	if len(b) > maxRecord {
		return Peer{}, fmt.Errorf("version record of %d bytes, more than %d", len(b), maxRecord)
	}
	var p Peer
	if err := json.Unmarshal(b, &p); err != nil {
		return Peer{}, fmt.Errorf("version record: %w", err)
	}
	if p.Name == "" {
		return Peer{}, errors.New("version record without a name")
	}
	return p, nil
}

// SetVersions sets what this replica publishes: its config hash, policy
// hash and airlock version. Published at once when Redis is up, and then
// every versionInterval with an expiry of versionTTL.
func (c *Cluster) SetVersions(config, policy, binary string) {
	c.mu.Lock()
	c.versions = Peer{Name: c.name, Config: config, Policy: policy, Binary: binary}
	c.mu.Unlock()
	if c.isUp() {
		c.publishVersions(context.Background())
	}
}

// Peers lists the other live replicas' records, by name, as of the last
// scan (at most versionInterval old; dropped after versionTTL without a
// successful scan).
func (c *Cluster) Peers() []Peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.peersAt) > versionTTL {
		return nil
	}
	return append([]Peer(nil), c.peers...)
}

// Mismatch is true, naming them, when some live replica runs a different
// config or policy than this one. A different airlock version alone is
// not a mismatch (rolling upgrades); Peers shows it.
func (c *Cluster) Mismatch() (bool, string) {
	c.mu.Lock()
	mine := c.versions
	c.mu.Unlock()
	var diff []string
	for _, p := range c.Peers() {
		var what []string
		if p.Config != mine.Config {
			what = append(what, "config "+p.Config)
		}
		if p.Policy != mine.Policy {
			what = append(what, "policy "+p.Policy)
		}
		if len(what) > 0 {
			diff = append(diff, fmt.Sprintf("%s runs %s", p.Name, strings.Join(what, " and ")))
		}
	}
	if len(diff) == 0 {
		return false, ""
	}
	return true, fmt.Sprintf("this replica %s runs config %s policy %s; %s", mine.Name, mine.Config, mine.Policy, strings.Join(diff, "; "))
}

func (c *Cluster) versionKey(name string) string { return c.prefix + "replica:" + name }

func (c *Cluster) publishVersions(ctx context.Context) {
	c.mu.Lock()
	v := c.versions
	c.mu.Unlock()
	b, _ := json.Marshal(v)
	cctx, cancel := c.call(ctx)
	defer cancel()
	if err := c.rdb.Set(cctx, c.versionKey(c.name), b, versionTTL).Err(); err != nil && ctx.Err() == nil {
		c.failed("versions", err)
	}
}

// scanPeers reads every other replica's record.
func (c *Cluster) scanPeers(ctx context.Context) error {
	cctx, cancel := c.call(ctx)
	defer cancel()
	var keys []string
	iter := c.rdb.Scan(cctx, 0, c.versionKey("*"), 100).Iterator()
	for iter.Next(cctx) {
		if k := iter.Val(); k != c.versionKey(c.name) {
			keys = append(keys, k)
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	var peers []Peer
	if len(keys) > 0 {
		vals, err := c.rdb.MGet(cctx, keys...).Result()
		if err != nil {
			return err
		}
		for i, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue // expired between SCAN and MGET
			}
			p, err := parseVersionRecord([]byte(s))
			if err != nil {
				c.log.Warn("ignoring a bad version record", "key", keys[i], "err", err.Error())
				continue
			}
			peers = append(peers, p)
		}
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Name < peers[j].Name })
	c.mu.Lock()
	c.peers, c.peersAt = peers, time.Now()
	c.mu.Unlock()
	return nil
}

func (c *Cluster) versionLoop(ctx context.Context) {
	t := time.NewTicker(versionInterval)
	defer t.Stop()
	var wasMismatch bool
	for {
		if c.isUp() {
			c.publishVersions(ctx)
			if err := c.scanPeers(ctx); err != nil && ctx.Err() == nil {
				c.failed("peers", err)
			}
		}
		c.m.peers.Set(float64(len(c.Peers())))
		mis, why := c.Mismatch()
		if mis {
			c.m.mismatch.Set(1)
		} else {
			c.m.mismatch.Set(0)
		}
		if mis != wasMismatch {
			if mis {
				c.log.Warn("replicas disagree on config or policy", logReason, why)
			} else {
				c.log.Info("replicas agree on config and policy again")
			}
			wasMismatch = mis
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
