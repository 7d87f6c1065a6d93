package node

import (
	"log/slog"
	"os"

	"github.com/airlockdev/airlock/internal/hostfw"
)

// Node applies, inspects and resets airlock's configuration of one host.
// Every file it reads or writes lives under Root; packet rules and routes
// go through a hostfw.Runner (nft, ip) in the caller's network namespace.
type Node struct {
	root string
	run  hostfw.Runner
	log  *slog.Logger
	// rename commits a staged file; tests replace it to inject faults.
	rename func(oldpath, newpath string) error
}

// New returns a Node for root. It does no I/O.
func New(root string, r hostfw.Runner, log *slog.Logger) *Node {
	if r == nil {
		r = hostfw.Exec{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Node{root: root, run: r, log: log, rename: os.Rename}
}
