package cluster

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"time"
)

// Advertise is the base URL other replicas reach this replica's registry
// at (cluster.advertise, no trailing slash); empty when not configured.
func (c *Cluster) Advertise() string { return c.advertise }

// PeerToken is the secret replicas show each other in their requests
// (the registry's Airlock-Peer header). The first replica to ask stores a
// random one in Redis (SET NX); every replica reads it back once and keeps
// it. While Redis is unreachable and the token not yet known it returns
// ErrUnavailable: no streaming between replicas then.
func (c *Cluster) PeerToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	tok := c.peerToken
	c.mu.Unlock()
	if tok != "" {
		return tok, nil
	}
	return c.readPeerToken(ctx)
}

// peerTokenRefresh is how often, at most, a replica that was shown a
// token other than its own reads the token from Redis again (Redis lost
// its data and another replica set a new one).
const peerTokenRefresh = 5 * time.Second

// readPeerToken sets the token unless set, reads it and keeps it.
func (c *Cluster) readPeerToken(ctx context.Context) (string, error) {
	if !c.isUp() {
		return "", ErrUnavailable
	}
	var b [32]byte
	rand.Read(b[:])
	key := c.prefix + "peer-token"
	cctx, cancel := c.call(ctx)
	defer cancel()
	if err := c.rdb.SetNX(cctx, key, hex.EncodeToString(b[:]), 0).Err(); err != nil {
		if ctx.Err() == nil {
			c.failed("peer-token", err)
		}
		return "", fmt.Errorf("cluster: peer token: %w", err)
	}
	tok, err := c.rdb.Get(cctx, key).Result()
	if err != nil || tok == "" {
		if err != nil && ctx.Err() == nil {
			c.failed("peer-token", err)
		}
		return "", fmt.Errorf("cluster: peer token: %w", err)
	}
	c.mu.Lock()
	c.peerToken, c.peerTokenAt = tok, time.Now()
	c.mu.Unlock()
	return tok, nil
}

// CheckPeerToken reports whether tok is the cluster's peer token (the
// registry's registry.Deps.PeerAuth). False while the token is unknown.
func (c *Cluster) CheckPeerToken(ctx context.Context, tok string) bool {
	want, err := c.PeerToken(ctx)
	if err != nil {
		return false
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1 {
		return true
	}
	c.mu.Lock()
	stale := time.Since(c.peerTokenAt) > peerTokenRefresh
	c.mu.Unlock()
	if !stale {
		return false
	}
	if want, err = c.readPeerToken(ctx); err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1
}

// ForgetPeerToken drops the kept token: a peer refused it (Redis lost its
// data and another replica set a new one); the next PeerToken reads it.
func (c *Cluster) ForgetPeerToken() {
	c.mu.Lock()
	if time.Since(c.peerTokenAt) > peerTokenRefresh {
		c.peerToken = ""
	}
	c.mu.Unlock()
}
