package node

import (
	"log/slog"
	"os"
)

// Node applies, inspects and resets airlock's configuration of one host.
// Every file it reads or writes lives under Root; packet rules and routes
// go through Runner (nft, ip) in the caller's network namespace.
type Node struct {
	root string
	run  Runner
	log  *slog.Logger
	// rename commits a staged file; tests replace it to inject faults.
	rename func(oldpath, newpath string) error
}

// New returns a Node for root. It does no I/O.
func New(root string, r Runner, log *slog.Logger) *Node {
	if r == nil {
		r = ExecRunner{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Node{root: root, run: r, log: log, rename: os.Rename}
}
