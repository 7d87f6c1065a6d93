// Package node makes a Linux host a network isolated node: an nftables
// ruleset for its outbound type, containerd mirror configuration for its
// artifact source, and its resolver pointed at airlock DNS. It owns
// apply, status and reset.
package node
