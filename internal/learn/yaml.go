package learn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/airlockdev/airlock/internal/policy"
)

// Policy returns the proposal as a policy section: the existing location
// and the learned group (none when nothing was learned).
func (p *Proposal) Policy() policy.Config {
	cfg := policy.Config{Location: p.Location}
	if g, ok := p.group(); ok {
		cfg.RuleCollectionGroups = []policy.RuleCollectionGroup{g}
	}
	return cfg
}

// Rules returns the number of rules proposed.
func (p *Proposal) Rules() int {
	n := 0
	for _, c := range p.Collections {
		n += len(c.Rules)
	}
	return n
}

func (p *Proposal) group() (policy.RuleCollectionGroup, bool) {
	if len(p.Collections) == 0 {
		return policy.RuleCollectionGroup{}, false
	}
	g := policy.RuleCollectionGroup{Name: p.Group, Priority: p.Priority}
	for _, c := range p.Collections {
		rc := policy.RuleCollection{Name: c.Name, Type: c.Type, Priority: c.Priority, Action: policy.ActionAllow}
		for _, r := range c.Rules {
			rc.Rules = append(rc.Rules, r.Rule)
		}
		g.RuleCollections = append(g.RuleCollections, rc)
	}
	return g, true
}

// Merge returns existing with the proposal's rules added as a new group
// (a name and priority existing does not use), leaving out every rule whose
// evidence existing already allows (each sample flow decided by
// policy.Compile(existing)). An existing policy that does not compile gets
// every rule.
func Merge(existing policy.Config, p *Proposal) policy.Config {
	q := p.Against(existing)
	out := existing
	out.RuleCollectionGroups = slices.Clone(existing.RuleCollectionGroups)
	if g, ok := q.group(); ok {
		out.RuleCollectionGroups = append(out.RuleCollectionGroups, g)
	}
	return out
}

// Against returns a copy of the proposal for adding to existing: the
// group renamed and re-prioritized to be free in existing, without the
// rules existing already allows (counted in AlreadyAllowed).
func (p *Proposal) Against(existing policy.Config) *Proposal {
	q := *p
	q.Location = existing.Location
	q.Group, q.Priority = freeGroup(existing)
	q.Collections = nil
	pol, err := policy.Compile(existing)
	for _, c := range p.Collections {
		nc := c
		nc.Rules = nil
		for _, r := range c.Rules {
			if err == nil && allowedBy(pol, r.checks) {
				q.AlreadyAllowed++
				continue
			}
			nc.Rules = append(nc.Rules, r)
		}
		if len(nc.Rules) > 0 {
			q.Collections = append(q.Collections, nc)
		}
	}
	return &q
}

func allowedBy(pol *policy.Policy, checks []check) bool {
	if len(checks) == 0 {
		return false
	}
	for _, c := range checks {
		var d policy.Decision
		if c.nameOnly {
			d = pol.AllowsName(c.flow.Src, c.flow.Name)
		} else {
			d = pol.Decide(c.flow)
		}
		if !d.Allowed() {
			return false
		}
	}
	return true
}

// WriteYAML writes the proposal as a config document: version 1 and the
// policy section, each rule under a comment with its evidence. It passes
// `airlock config check` and `airlock policy check` as it is, and its
// policy section can replace or be merged into airlock.yaml's.
func (p *Proposal) WriteYAML(w io.Writer) error {
	polNode := mapping()
	if p.Location != "" {
		addKV(polNode, "location", str(p.Location))
	}
	groups := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	if g := p.groupNode(); g != nil {
		groups.Content = append(groups.Content, g)
	} else {
		groups.Style = yaml.FlowStyle
	}
	addKV(polNode, "ruleCollectionGroups", groups)
	root := mapping()
	addKV(root, "version", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: "1"})
	root.Content[0].HeadComment = comment(p.header())
	addKV(root, "policy", polNode)
	return encode(w, &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}})
}

func encode(w io.Writer, doc *yaml.Node) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("writing the policy YAML: %w", err)
	}
	return enc.Close()
}

// header is the comment at the top of the document.
func (p *Proposal) header() []string {
	s := p.Stats
	lines := []string{
		"Proposed by airlock policy learn: allows what was denied (or would have been, in report mode) and nothing more.",
		fmt.Sprintf("Records: %d (%d allowed, %d denied, %d of them in report mode)%s.", s.Records, s.Allowed, s.Denied, s.ReportMode, span(s.First, s.Last)),
		fmt.Sprintf("Rules: %d; names collapse into *.domain at %d siblings; tags need %d names seen.", p.Rules(), p.Threshold, minTagNames),
	}
	if p.AlreadyAllowed > 0 {
		lines = append(lines, fmt.Sprintf("Left out: %d rules whose flows the existing policy already allows.", p.AlreadyAllowed))
	}
	if len(s.NotLearnable) > 0 {
		keys := make([]string, 0, len(s.NotLearnable))
		for k := range s.NotLearnable {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, s.NotLearnable[k]))
		}
		lines = append(lines, "Denied, not learned (no allow rule changes these): "+strings.Join(parts, ", ")+".")
	}
	if p.LeftOut > 0 {
		lines = append(lines, fmt.Sprintf("WARNING: %d rules with the fewest hits were left out to keep this document under the config size limit (4 MiB);", p.LeftOut),
			"learn from a shorter stretch of log, or configure source groups (learn.sources).")
	}
	if s.Dropped > 0 {
		lines = append(lines, fmt.Sprintf("WARNING: the key limit (%d) was reached: %d denied records of new keys were not learned;", p.MaxKeys, s.Dropped),
			"learn from a shorter stretch of log, or configure source groups (learn.sources) so sources share keys.")
	}
	lines = append(lines, "Review every rule before enforcing it.")
	return lines
}

func span(first, last time.Time) string {
	if first.IsZero() {
		return ""
	}
	return fmt.Sprintf(" from %s to %s", first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339))
}

// groupNode renders the group with comments; nil when empty.
func (p *Proposal) groupNode() *yaml.Node {
	if len(p.Collections) == 0 {
		return nil
	}
	colls := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, c := range p.Collections {
		rules := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, r := range c.Rules {
			rn := ruleNode(r.Rule)
			rn.HeadComment = comment(append([]string{r.Evidence.String()}, r.Notes...))
			rules.Content = append(rules.Content, rn)
		}
		cn := mapping()
		addKV(cn, "name", str(c.Name))
		addKV(cn, "type", str(string(c.Type)))
		addKV(cn, "priority", num(c.Priority))
		addKV(cn, "action", str(string(policy.ActionAllow)))
		addKV(cn, "rules", rules)
		cn.HeadComment = comment(c.Notes)
		colls.Content = append(colls.Content, cn)
	}
	g := mapping()
	addKV(g, "name", str(p.Group))
	addKV(g, "priority", num(p.Priority))
	addKV(g, "ruleCollections", colls)
	return g
}

func ruleNode(r policy.Rule) *yaml.Node {
	n := mapping()
	addKV(n, "name", str(r.Name))
	for _, f := range []struct {
		key  string
		vals []string
	}{
		{"protocols", r.Protocols},
		{"sourceAddresses", r.SourceAddresses},
		{"destinationAddresses", r.DestinationAddresses},
		{"destinationPorts", r.DestinationPorts},
		{"targetFqdns", r.TargetFqdns},
		{"fqdnTags", r.FqdnTags},
	} {
		if len(f.vals) == 0 {
			continue
		}
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for _, v := range f.vals {
			seq.Content = append(seq.Content, str(v))
		}
		addKV(n, f.key, seq)
	}
	return n
}

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func num(n int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(n)}
}

func addKV(m *yaml.Node, k string, v *yaml.Node) { m.Content = append(m.Content, str(k), v) }

// comment turns lines into a YAML comment; characters a comment cannot
// hold (line breaks) become spaces.
func comment(lines []string) string {
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("# ")
		b.WriteString(strings.Map(func(r rune) rune {
			if r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, l))
	}
	return b.String()
}

// MergeYAML adds the proposal to the config document doc (airlock.yaml as
// written), whose decoded policy section is existing: the learned group,
// with its comments, is appended to policy.ruleCollectionGroups (created
// when missing), leaving out what existing already allows. The rest of
// the document is kept, re-encoded (indent 2; comments kept). It returns
// the new document and the proposal as merged.
func MergeYAML(doc []byte, existing policy.Config, p *Proposal) ([]byte, *Proposal, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, nil, fmt.Errorf("reading the config to merge into: %w", err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, nil, errors.New("the config to merge into is not a YAML mapping (airlock.yaml starts with version: 1)")
	}
	q := p.Against(existing)
	g := q.groupNode()
	if g == nil {
		return doc, q, nil
	}
	pol := lookup(root.Content[0], "policy")
	if pol == nil || pol.Kind != yaml.MappingNode {
		if pol == nil {
			pol = mapping()
			addKV(root.Content[0], "policy", pol)
		} else {
			*pol = *mapping()
		}
	}
	groups := lookup(pol, "ruleCollectionGroups")
	switch {
	case groups == nil:
		groups = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		addKV(pol, "ruleCollectionGroups", groups)
	case groups.Kind != yaml.SequenceNode:
		*groups = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	}
	groups.Style = 0
	g.HeadComment = comment(q.header())
	groups.Content = append(groups.Content, g)
	var buf bytes.Buffer
	if err := encode(&buf, &root); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), q, nil
}

// lookup returns the value of key k in mapping m, or nil.
func lookup(m *yaml.Node, k string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i+1]
		}
	}
	return nil
}
