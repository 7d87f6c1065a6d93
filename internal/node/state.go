package node

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// StateDir holds node's state file and the backups of the files it
// changed (a path on the node).
const StateDir = "/var/lib/airlock/node"

const stateVersion = 1

// State is what `airlock node apply` left on the node: read by status,
// by the next apply (to converge) and by reset (to undo).
type State struct {
	Version        int            `json:"version"`
	OutboundType   OutboundType   `json:"outboundType"`
	ArtifactSource ArtifactSource `json:"artifactSource"`
	// Resolver is the resolver configuration written: resolvconf,
	// resolved, or none.
	Resolver ResolverMode `json:"resolver"`
	// Registry, Gateway and DNS are the node section's addresses; several
	// replicas are joined by ", " (a string, as before replicas).
	Registry string `json:"registry,omitempty"`
	Gateway  string `json:"gateway,omitempty"`
	DNS      string `json:"dns,omitempty"`
	// Mirrors are the upstreams pinned to the airlock registry, and
	// CertsDir the containerd hosts directory they are written to.
	Mirrors  []Mirror `json:"mirrors,omitempty"`
	CertsDir string   `json:"certsDir,omitempty"`
	// Runtimes are the container runtimes apply configured, as detected
	// or listed in node.runtimes.
	Runtimes []RuntimeInfo `json:"runtimes,omitempty"`
	// Files are the files airlock wrote, with what it found before.
	Files []FileRecord `json:"files,omitempty"`
	// Table is true when airlock's nftables table is installed, with
	// RuleCounts rules per chain; RulesetSHA256 is the hash of the text
	// loaded.
	Table         bool           `json:"table"`
	RuleCounts    map[string]int `json:"ruleCounts,omitempty"`
	RulesetSHA256 string         `json:"rulesetSHA256,omitempty"`
	// CreatedDirs are the directories airlock created (on the node),
	// removed by reset when they are empty again.
	CreatedDirs []string `json:"createdDirs,omitempty"`
	// Route is the default route airlock set (userDefinedRouting).
	Route *RouteRecord `json:"route,omitempty"`
}

// FileRecord is one file airlock wrote.
type FileRecord struct {
	Path   string `json:"path"` // on the node (under root)
	Role   string `json:"role"`
	SHA256 string `json:"sha256"` // of the content airlock wrote
	// Created is true when the file did not exist before airlock wrote
	// it: reset removes it. Otherwise Backup (or LinkTarget, when it was
	// a symlink) is what reset puts back.
	Created    bool   `json:"created"`
	Backup     string `json:"backup,omitempty"`
	LinkTarget string `json:"linkTarget,omitempty"`
	// Mode and Owner are the original file's (with Backup), restored
	// with its content.
	Mode  fs.FileMode `json:"mode,omitempty"`
	Owner *Owner      `json:"owner,omitempty"`
}

// RouteRecord is the default route airlock set and the one it replaced.
type RouteRecord struct {
	Family  string `json:"family"` // "4" or "6"
	Gateway string `json:"gateway"`
	// Previous is the default route before airlock; nil when there was
	// none.
	Previous *Route `json:"previous,omitempty"`
}

// Route is a default route as `ip -j route show default` prints it.
type Route struct {
	Gateway string `json:"gateway,omitempty"`
	Dev     string `json:"dev,omitempty"`
	Metric  int    `json:"metric,omitempty"`
}

func (s *State) file(path string) (FileRecord, bool) {
	for _, f := range s.Files {
		if f.Path == path {
			return f, true
		}
	}
	return FileRecord{}, false
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func (n *Node) statePath() string { return n.under(StateDir + "/state.json") }

// under maps a path on the node to the path under root.
func (n *Node) under(p string) string { return filepath.Join(n.root, p) }

// loadState reads the state; no state file gives nil and no error.
func (n *Node) loadState() (*State, error) {
	b, err := os.ReadFile(n.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading node state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("reading node state %s: %w (move it away to start over; backups are next to it)", n.statePath(), err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("node state %s has version %d, this airlock reads %d", n.statePath(), s.Version, stateVersion)
	}
	return &s, nil
}

func marshalState(s *State) []byte {
	b, _ := json.MarshalIndent(s, "", "  ")
	return append(b, '\n')
}
