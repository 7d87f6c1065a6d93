package node

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/airlockdev/airlock/internal/hostfw"
)

// Status is what is applied on the node and what drifted since.
type Status struct {
	// Applied is false when apply never ran (or reset ran since).
	Applied bool `json:"applied"`
	// State is what apply recorded.
	State *State `json:"state,omitempty"`
	// LiveRuleCounts are the rules per chain of the installed table (nil
	// when it is missing).
	LiveRuleCounts map[string]int `json:"liveRuleCounts,omitempty"`
	// Drift lists every difference between the state and the node.
	Drift []string `json:"drift"`
	// Runtimes are the container runtimes apply configured, each with
	// the files it reads and whether they are as apply wrote them.
	Runtimes []RuntimeStatus `json:"runtimes,omitempty"`
}

// RuntimeStatus is one configured runtime and its files.
type RuntimeStatus struct {
	RuntimeInfo
	Files []FileStatus `json:"files"`
}

// FileStatus is one file apply wrote and what became of it.
type FileStatus struct {
	Path string `json:"path"`
	Role string `json:"role"`
	// State is "as applied", "changed since apply" or "missing".
	State string `json:"state"`
}

// Status reads the state and compares it with the node.
func (n *Node) Status(ctx context.Context) (*Status, error) {
	st, err := n.loadState()
	if err != nil {
		return nil, err
	}
	live, err := hostfw.NFT{R: n.run}.Counts(ctx, "inet", Table)
	if err != nil {
		return nil, err
	}
	s := &Status{Applied: st != nil, State: st, LiveRuleCounts: live, Drift: []string{}}
	if st == nil {
		if live != nil {
			s.Drift = append(s.Drift, fmt.Sprintf("table inet %s is installed but no apply is recorded", Table))
		}
		return s, nil
	}
	switch {
	case st.Table && live == nil:
		s.Drift = append(s.Drift, fmt.Sprintf("table inet %s is missing (flushed?): run airlock node apply", Table))
	case st.Table && !maps.Equal(live, st.RuleCounts):
		s.Drift = append(s.Drift, fmt.Sprintf("table inet %s has %s, apply loaded %s: run airlock node apply", Table, countsDetail(live), countsDetail(st.RuleCounts)))
	case !st.Table && live != nil:
		s.Drift = append(s.Drift, fmt.Sprintf("table inet %s is installed although outboundType %s has no packet rules", Table, st.OutboundType))
	}
	fileState := map[string]string{}
	for _, f := range st.Files {
		b, exists, err := readFile(n.under(f.Path))
		fileState[f.Path] = "as applied"
		switch {
		case err != nil:
			s.Drift = append(s.Drift, fmt.Sprintf("%s: %v", f.Path, err))
			fileState[f.Path] = err.Error()
		case !exists:
			s.Drift = append(s.Drift, fmt.Sprintf("%s (%s) is missing", f.Path, f.Role))
			fileState[f.Path] = "missing"
		case sum([]byte(b)) != f.SHA256:
			s.Drift = append(s.Drift, fmt.Sprintf("%s (%s) changed since apply", f.Path, f.Role))
			fileState[f.Path] = "changed since apply"
		}
	}
	for _, rt := range st.Runtimes {
		rs := RuntimeStatus{RuntimeInfo: rt, Files: []FileStatus{}}
		for _, f := range st.Files {
			if slices.Contains(runtimeFiles(f.Role), rt.Runtime) {
				rs.Files = append(rs.Files, FileStatus{Path: f.Path, Role: f.Role, State: fileState[f.Path]})
			}
		}
		s.Runtimes = append(s.Runtimes, rs)
	}
	if st.Route != nil {
		cur, err := n.defaultRoute(ctx, st.Route.Family)
		if err != nil {
			s.Drift = append(s.Drift, err.Error())
		} else if cur == nil || cur.Gateway != st.Route.Gateway {
			s.Drift = append(s.Drift, fmt.Sprintf("default route is %s, apply set via %s", routeText(cur), st.Route.Gateway))
		}
	}
	return s, nil
}

func countsDetail(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "no rules"
	}
	return strings.Join(parts, ", ")
}

// Print writes the status as text: the `az aks show` of a node.
func (s *Status) Print(w io.Writer) {
	if !s.Applied {
		fmt.Fprintln(w, "not applied (airlock node apply has not run on this node, or reset ran since)")
		for _, d := range s.Drift {
			fmt.Fprintf(w, "drift: %s\n", d)
		}
		return
	}
	st := s.State
	fmt.Fprintf(w, "outboundType:   %s\n", st.OutboundType)
	fmt.Fprintf(w, "artifactSource: %s\n", st.ArtifactSource)
	if len(st.Mirrors) > 0 {
		fmt.Fprintf(w, "mirrors:        (hosts files in %s)\n", st.CertsDir)
		regs := strings.Split(st.Registry, ", ")
		for _, m := range st.Mirrors {
			target := st.Registry + " (mirror style, ?ns=" + m.Upstream + ")"
			if m.Prefix != "" {
				urls := make([]string, len(regs))
				for i, r := range regs {
					urls[i] = strings.TrimPrefix(MirrorEndpoint{}.URL(m, r), "http://")
				}
				target = strings.Join(urls, ", ")
			}
			fmt.Fprintf(w, "  %s → %s\n", m.Upstream, target)
		}
	}
	fmt.Fprintf(w, "resolver:       %s", st.Resolver)
	if st.DNS != "" && st.Resolver != ResolverNone {
		fmt.Fprintf(w, " → %s", st.DNS)
	}
	fmt.Fprintln(w)
	if st.Table {
		fmt.Fprintf(w, "rules:          table inet %s: %s\n", Table, countsDetail(st.RuleCounts))
	} else {
		fmt.Fprintf(w, "rules:          none (table inet %s absent)\n", Table)
	}
	if st.Route != nil {
		fmt.Fprintf(w, "default route:  via %s (was %s)\n", st.Route.Gateway, routeText(st.Route.Previous))
	}
	for _, f := range st.Files {
		how := "modified, backup " + f.Backup
		if f.Created {
			how = "created"
		} else if f.LinkTarget != "" {
			how = "replaced symlink to " + f.LinkTarget
		}
		fmt.Fprintf(w, "file:           %s (%s; %s)\n", f.Path, f.Role, how)
	}
	for _, rt := range s.Runtimes {
		fmt.Fprintf(w, "runtime:        %s\n", rt.RuntimeInfo)
		if len(rt.Files) == 0 {
			fmt.Fprintf(w, "                nothing written (artifactSource %s)\n", st.ArtifactSource)
		}
		for _, f := range rt.Files {
			fmt.Fprintf(w, "                %s (%s): %s\n", f.Path, f.Role, f.State)
		}
	}
	if len(s.Drift) == 0 {
		fmt.Fprintln(w, "drift:          none")
	}
	for _, d := range s.Drift {
		fmt.Fprintf(w, "drift:          %s\n", d)
	}
}
