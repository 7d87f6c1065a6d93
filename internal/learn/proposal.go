package learn

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/airlockdev/airlock/internal/policy"
)

// Proposal is the policy a Learner proposes: one rule collection group of
// allow collections, each rule with its evidence.
type Proposal struct {
	// Stats are the Learner's counts when the proposal was made.
	Stats Stats
	// Threshold is the collapsing threshold used.
	Threshold int
	// MaxKeys is the key limit used.
	MaxKeys int
	// Location is the existing policy's location, kept so the proposal
	// expands tag entries the same way.
	Location string
	// Group and Priority are the rule collection group's name and priority,
	// chosen free in Options.Existing.
	Group    string
	Priority int
	// Collections are in priority order.
	Collections []ProposedCollection
	// AlreadyAllowed counts the rules Against left out because the
	// existing policy allows their flows.
	AlreadyAllowed int
	// LeftOut counts the rules with the least evidence left out to keep the
	// document within the config loader's size limit.
	LeftOut int
}

// ProposedCollection is one allow collection of the proposal.
type ProposedCollection struct {
	Name     string
	Type     policy.CollectionType
	Priority int
	// Notes are comments written above the collection.
	Notes []string
	Rules []ProposedRule
}

// ProposedRule is one rule with what was seen of the flows it allows.
type ProposedRule struct {
	Rule     policy.Rule
	Evidence Evidence
	// Notes are comments written above the rule after the evidence: what a
	// wildcard or tag covers, assumptions made.
	Notes []string
	// checks are sample flows of the evidence, for Merge.
	checks []check
}

// Evidence is what was seen of the flows a rule allows.
type Evidence struct {
	// Hits counts gateway records, DNSHits DNS questions.
	Hits, DNSHits int64
	// Sources is the number of distinct source addresses; MoreSources is
	// true when there were more than learn counts per rule (32).
	Sources     int
	MoreSources bool
	// First and Last are the times of the first and last record.
	First, Last time.Time
	// Bytes is bytes_up + bytes_down of the gateway records.
	Bytes int64
	// ReportMode is true when some of the records were would-be denies.
	ReportMode bool
}

// String is the evidence as the comment above a rule writes it.
func (e Evidence) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hits %d", e.Hits)
	if e.DNSHits > 0 {
		fmt.Fprintf(&b, ", dns %d", e.DNSHits)
	}
	more := ""
	if e.MoreSources {
		more = "+"
	}
	fmt.Fprintf(&b, ", sources %d%s", e.Sources, more)
	if !e.First.IsZero() {
		fmt.Fprintf(&b, ", first %s, last %s", e.First.UTC().Format(time.RFC3339), e.Last.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, ", bytes %d", e.Bytes)
	if e.ReportMode {
		b.WriteString(", report mode")
	}
	return b.String()
}

func (e *evidence) public() Evidence {
	return Evidence{Hits: e.hits, DNSHits: e.dnsHits, Sources: len(e.sources), MoreSources: e.moreSources,
		First: e.first, Last: e.last, Bytes: e.bytes, ReportMode: e.report}
}

// check is a flow (or, nameOnly, a DNS question) the evidence saw.
type check struct {
	flow     policy.Flow
	nameOnly bool
}

// checksPerKey bounds the sample flows kept per key for Merge.
const checksPerKey = 4

func checksOf(k key, e *evidence) []check {
	var out []check
	for i, s := range e.sources {
		if i == checksPerKey {
			break
		}
		c := check{flow: policy.Flow{Src: s}}
		switch k.kind {
		case kindDNS:
			c.flow.Name, _ = parseName(k.name)
			c.nameOnly = true
		case kindApp:
			c.flow.Name, _ = parseName(k.name)
			c.flow.Dst = netip.AddrPortFrom(netip.IPv4Unspecified(), k.port)
			c.flow.Proto, c.flow.App = policy.ProtoTCP, k.app
		case kindNet:
			c.flow.Dst = netip.AddrPortFrom(k.dst, k.port)
			c.flow.Proto = k.proto
		}
		out = append(out, c)
	}
	return out
}

// Proposal builds the proposal from what was added so far.
func (l *Learner) Proposal() *Proposal {
	p := &Proposal{Stats: l.Stats(), Threshold: l.opts.Threshold, MaxKeys: l.opts.MaxKeys,
		Location: l.opts.Existing.Location}
	p.Group, p.Priority = freeGroup(l.opts.Existing)

	// Bucket the keys by source: a configured group, or one address.
	type bucket struct {
		group int
		addr  netip.Addr
		keys  []key
	}
	var buckets []*bucket
	for _, k := range l.sortedKeys() {
		if n := len(buckets); n > 0 && buckets[n-1].group == k.group && buckets[n-1].addr == k.addr {
			buckets[n-1].keys = append(buckets[n-1].keys, k)
			continue
		}
		buckets = append(buckets, &bucket{group: k.group, addr: k.addr, keys: []key{k}})
	}
	// Configured groups come first (the sort puts -1 first: move it).
	slices.SortStableFunc(buckets, func(a, b *bucket) int {
		return cmp.Compare(b2i(a.group < 0), b2i(b.group < 0))
	})
	var colls []ProposedCollection
	var otherApp, otherNet []ProposedRule
	appIndex, netIndex := map[string]int{}, map[string]int{} // signature → index
	for _, b := range buckets {
		if b.group >= 0 {
			g := l.groups[b.group]
			app, net := l.rulesFor(b.keys, g.ranges)
			note := fmt.Sprintf("source group %s: %s", g.name, strings.Join(g.ranges, ", "))
			if len(app) > 0 {
				colls = append(colls, ProposedCollection{Name: g.name + "-application", Type: policy.TypeApplication, Notes: []string{note}, Rules: app})
			}
			if len(net) > 0 {
				colls = append(colls, ProposedCollection{Name: g.name + "-network", Type: policy.TypeNetwork, Notes: []string{note}, Rules: net})
			}
			continue
		}
		src := netip.PrefixFrom(b.addr, b.addr.BitLen()).String()
		app, net := l.rulesFor(b.keys, []string{src})
		otherApp = mergeBySource(otherApp, app, appIndex)
		otherNet = mergeBySource(otherNet, net, netIndex)
	}
	otherNote := "sources outside every configured source range (learn.sources, --sources): each rule lists the addresses it was seen from"
	if len(l.groups) == 0 {
		otherNote = "no source groups configured (learn.sources, --sources): each rule lists the addresses it was seen from"
	}
	if len(otherApp) > 0 {
		colls = append(colls, ProposedCollection{Name: "sources-application", Type: policy.TypeApplication, Notes: []string{otherNote}, Rules: otherApp})
	}
	if len(otherNet) > 0 {
		colls = append(colls, ProposedCollection{Name: "sources-network", Type: policy.TypeNetwork, Notes: []string{otherNote}, Rules: otherNet})
	}
	colls, p.LeftOut = trim(colls, maxDocBytes)
	// Unique names and priorities.
	names := map[string]bool{}
	step := 100
	if len(colls) > 0 {
		step = max(1, min(100, (policy.MaxPriority-policy.MinPriority)/len(colls)))
	}
	for i := range colls {
		colls[i].Name = unique(colls[i].Name, names)
		colls[i].Priority = policy.MinPriority + i*step
		rn := map[string]bool{}
		for j := range colls[i].Rules {
			colls[i].Rules[j].Rule.Name = unique(colls[i].Rules[j].Rule.Name, rn)
		}
	}
	p.Collections = colls
	return p
}

// nameInfo gathers what was seen of one name within a source bucket.
type nameInfo struct {
	name    string
	protos  map[string]bool
	ev      evidence
	checks  []check
	dnsOnly bool
}

// rulesFor builds the application and network rules of one source bucket.
func (l *Learner) rulesFor(keys []key, sources []string) (app, net []ProposedRule) {
	names := map[string]*nameInfo{}
	dns := map[string]*nameInfo{}
	type netKey struct {
		dst   netip.Addr
		proto policy.Proto
	}
	type netInfo struct {
		ports  map[uint16]bool
		ev     evidence
		checks []check
	}
	nets := map[netKey]*netInfo{}
	var netOrder []netKey
	for _, k := range keys {
		e := l.keys[k]
		switch k.kind {
		case kindApp, kindDNS:
			m := names
			if k.kind == kindDNS {
				m = dns
			}
			ni := m[k.name]
			if ni == nil {
				ni = &nameInfo{name: k.name, protos: map[string]bool{}}
				m[k.name] = ni
			}
			if k.kind == kindApp {
				ni.protos[k.app.String()+":"+strconv.Itoa(int(k.port))] = true
			}
			ni.ev.merge(e)
			ni.checks = append(ni.checks, checksOf(k, e)...)
		case kindNet:
			nk := netKey{k.dst, k.proto}
			ni := nets[nk]
			if ni == nil {
				ni = &netInfo{ports: map[uint16]bool{}}
				nets[nk] = ni
				netOrder = append(netOrder, nk)
			}
			ni.ports[k.port] = true
			ni.ev.merge(e)
			ni.checks = append(ni.checks, checksOf(k, e)...)
		}
	}
	// DNS questions: evidence for a name the gateway also saw from these
	// sources; otherwise a rule of its own (see dnsOnly).
	for name, d := range dns {
		if ni := names[name]; ni != nil {
			ni.ev.merge(&d.ev)
			ni.checks = append(ni.checks, d.checks...)
			continue
		}
		d.dnsOnly = true
		for _, p := range l.gwProtos[name] {
			d.protos[p] = true
		}
		if len(d.protos) == 0 {
			d.protos["https:443"] = true
		}
		names[name] = d
	}
	sorted := make([]*nameInfo, 0, len(names))
	for _, ni := range names {
		sorted = append(sorted, ni)
	}
	slices.SortFunc(sorted, func(a, b *nameInfo) int { return strings.Compare(a.name, b.name) })

	rest := sorted
	app, rest = l.tagRules(rest, sources)
	var wild []ProposedRule
	wild, rest = collapse(rest, l.opts.Threshold, sources)
	app = append(app, wild...)
	for _, ni := range rest {
		r := ProposedRule{
			Rule:     policy.Rule{Name: ruleName(ni.name), Protocols: sortedProtos(ni.protos), SourceAddresses: sources, TargetFqdns: []string{ni.name}},
			Evidence: ni.ev.public(),
			checks:   ni.checks,
		}
		if ni.dnsOnly {
			if _, seen := l.gwProtos[ni.name]; seen {
				r.Notes = append(r.Notes, "denied in DNS for these sources; the gateway saw the name from others, with these protocols")
			} else {
				r.Notes = append(r.Notes, "seen in DNS only: no gateway record for the name, protocol assumed https:443")
			}
		}
		app = append(app, r)
	}
	for _, nk := range netOrder {
		ni := nets[nk]
		ports := make([]uint16, 0, len(ni.ports))
		for p := range ni.ports {
			ports = append(ports, p)
		}
		slices.Sort(ports)
		var ps []string
		if nk.proto == policy.ProtoICMP {
			ps = []string{"*"}
		}
		for _, p := range ports {
			if nk.proto != policy.ProtoICMP {
				ps = append(ps, strconv.Itoa(int(p)))
			}
		}
		dst := netip.PrefixFrom(nk.dst, nk.dst.BitLen()).String()
		net = append(net, ProposedRule{
			Rule: policy.Rule{Name: ruleName("ip-" + nk.dst.String() + "-" + nk.proto.String()), Protocols: []string{strings.ToUpper(nk.proto.String())},
				SourceAddresses: sources, DestinationAddresses: []string{dst}, DestinationPorts: ps},
			Evidence: ni.ev.public(),
			Notes:    []string{"no name seen (no SNI, Host or CONNECT name): a network rule to the address"},
			checks:   ni.checks,
		})
	}
	return app, net
}

// sortedProtos returns protocols ordered by scheme, then port number.
func sortedProtos(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b string) int {
		sa, pa, _ := strings.Cut(a, ":")
		sb, pb, _ := strings.Cut(b, ":")
		na, _ := strconv.Atoi(pa)
		nb, _ := strconv.Atoi(pb)
		return cmp.Or(strings.Compare(sa, sb), cmp.Compare(na, nb))
	})
	return out
}

// mergeBySource adds rules to acc; a rule whose targets, protocols and
// destinations equal one already in acc (index maps their signature to
// its index) joins it (its sources added):
// both allowed exactly what was seen, so the union does too.
func mergeBySource(acc, rules []ProposedRule, index map[string]int) []ProposedRule {
	for _, r := range rules {
		sig := signature(r.Rule)
		i, ok := index[sig]
		if !ok {
			r.Rule.SourceAddresses = slices.Clone(r.Rule.SourceAddresses)
			index[sig] = len(acc)
			acc = append(acc, r)
			continue
		}
		a := &acc[i]
		a.Rule.SourceAddresses = append(a.Rule.SourceAddresses, r.Rule.SourceAddresses...)
		a.Evidence = mergeEvidence(a.Evidence, r.Evidence)
		for _, n := range r.Notes {
			if !slices.Contains(a.Notes, n) {
				a.Notes = append(a.Notes, n)
			}
		}
		a.checks = append(a.checks, r.checks...)
	}
	return acc
}

func signature(r policy.Rule) string {
	return strings.Join([]string{strings.Join(r.TargetFqdns, ","), strings.Join(r.FqdnTags, ","), strings.Join(r.Protocols, ","),
		strings.Join(r.DestinationAddresses, ","), strings.Join(r.DestinationPorts, ",")}, "|")
}

// mergeEvidence adds two rules' evidence; their sources are distinct
// addresses (one per unranged source), so the counts add.
func mergeEvidence(a, b Evidence) Evidence {
	a.Hits += b.Hits
	a.DNSHits += b.DNSHits
	a.Sources += b.Sources
	a.MoreSources = a.MoreSources || b.MoreSources
	a.Bytes += b.Bytes
	a.ReportMode = a.ReportMode || b.ReportMode
	if a.First.IsZero() || !b.First.IsZero() && b.First.Before(a.First) {
		a.First = b.First
	}
	if b.Last.After(a.Last) {
		a.Last = b.Last
	}
	return a
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// maxDocBytes bounds the estimated size of the rules of a proposal, well
// under the config loader's 4 MiB file limit (the estimate errs high).
const maxDocBytes = 3 << 20

// estimate is an upper bound of the YAML a rule renders to.
func estimate(r *ProposedRule) int {
	n := 200 + len(r.Rule.Name) // evidence comment, keys, indentation
	for _, f := range [][]string{r.Rule.Protocols, r.Rule.SourceAddresses, r.Rule.DestinationAddresses,
		r.Rule.DestinationPorts, r.Rule.TargetFqdns, r.Rule.FqdnTags, r.Notes} {
		n += 40
		for _, v := range f {
			n += len(v) + 4
		}
	}
	return n
}

// trim keeps the rules with the most evidence (hits) whose estimated size
// fits in budget, in their order, and returns how many it left out.
func trim(colls []ProposedCollection, budget int) ([]ProposedCollection, int) {
	type ref struct{ c, r, size int }
	var refs []ref
	total := 0
	for ci := range colls {
		for ri := range colls[ci].Rules {
			sz := estimate(&colls[ci].Rules[ri])
			refs = append(refs, ref{ci, ri, sz})
			total += sz
		}
	}
	if total <= budget {
		return colls, 0
	}
	weight := func(x ref) int64 { e := colls[x.c].Rules[x.r].Evidence; return e.Hits + e.DNSHits }
	slices.SortStableFunc(refs, func(a, b ref) int { return cmp.Compare(weight(b), weight(a)) })
	keep := map[[2]int]bool{}
	used, left := 0, 0
	for _, x := range refs {
		if used+x.size > budget {
			left++
			continue
		}
		used += x.size
		keep[[2]int{x.c, x.r}] = true
	}
	var out []ProposedCollection
	for ci, c := range colls {
		var rules []ProposedRule
		for ri, r := range c.Rules {
			if keep[[2]int{ci, ri}] {
				rules = append(rules, r)
			}
		}
		if len(rules) > 0 {
			c.Rules = rules
			out = append(out, c)
		}
	}
	return out, left
}
