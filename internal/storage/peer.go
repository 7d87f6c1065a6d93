package storage

import "context"

// peerOnlyKey marks a request from another replica (docs/cluster.md,
// "Streaming a fill from the replica that fetches it").
type peerOnlyKey struct{}

// WithPeerOnly marks ctx as another replica's request: a store serves it
// only from what it has (storage, or a fill already under way here) and
// never starts an upstream fetch nor waits for another replica, so that
// replicas never ask each other in a loop.
func WithPeerOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, peerOnlyKey{}, true)
}

// PeerOnly reports whether ctx was marked by WithPeerOnly.
func PeerOnly(ctx context.Context) bool {
	v, _ := ctx.Value(peerOnlyKey{}).(bool)
	return v
}

// PeerHeader carries the cluster's peer token (cluster.Cluster.PeerToken)
// on one replica's request to another's registry.
const PeerHeader = "Airlock-Peer"
