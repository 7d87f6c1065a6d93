package learn

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/policy"
)

// minTagNames is how many distinct names of a built-in tag must have been
// seen before the tag is proposed instead of the names: one name is just a
// name, and a tag allows all of its entries.
const minTagNames = 2

// maxListed bounds the names a comment lists.
const maxListed = 10

func parseName(s string) (dnsname.Name, error) { return dnsname.Parse(s) }

// tagMatcher is a built-in tag with its entries parsed.
type tagMatcher struct {
	tag     policy.FQDNTag
	entries []tagEntry
}

type tagEntry struct {
	fqdn  string // as published
	pat   dnsname.Pattern
	proto string // https:443
	ok    bool   // false: needs a location the policy does not set
}

func compileTags(tags []policy.FQDNTag, location string) []tagMatcher {
	out := make([]tagMatcher, 0, len(tags))
	for _, t := range tags {
		m := tagMatcher{tag: t}
		for _, e := range t.Entries {
			te := tagEntry{fqdn: e.FQDN, proto: e.Protocol + ":" + strconv.Itoa(int(e.Port))}
			if p, err := e.Pattern(location); err == nil {
				te.pat, te.ok = p, true
			}
			m.entries = append(m.entries, te)
		}
		out = append(out, m)
	}
	return out
}

// covers returns the entries of the tag that allow every protocol the name
// was seen with, or nil when some protocol is not allowed.
func (m tagMatcher) covers(ni *nameInfo) []int {
	n, err := parseName(ni.name)
	if err != nil {
		return nil
	}
	var hit []int
	for p := range ni.protos {
		found := false
		for i, e := range m.entries {
			if e.ok && e.proto == p && e.pat.Match(n) {
				hit, found = append(hit, i), true
			}
		}
		if !found {
			return nil
		}
	}
	return hit
}

// tagRules proposes a built-in tag for the names it covers, when at least
// minTagNames of them were seen; it returns the tag rules and the names
// left. DNS-only names take no part: their protocol is a guess.
func (l *Learner) tagRules(names []*nameInfo, sources []string) ([]ProposedRule, []*nameInfo) {
	taken := map[*nameInfo]bool{}
	var out []ProposedRule
	for _, m := range l.tags {
		var covered []*nameInfo
		seen := map[int]bool{}
		for _, ni := range names {
			if ni.dnsOnly || taken[ni] {
				continue
			}
			if hit := m.covers(ni); hit != nil {
				covered = append(covered, ni)
				for _, i := range hit {
					seen[i] = true
				}
			}
		}
		if len(covered) < minTagNames {
			continue
		}
		r := ProposedRule{Rule: policy.Rule{Name: ruleName("tag." + m.tag.Name), SourceAddresses: sources, FqdnTags: []string{m.tag.Name}}}
		var ev evidence
		var listed []string
		for _, ni := range covered {
			taken[ni] = true
			ev.merge(&ni.ev)
			r.checks = append(r.checks, ni.checks...)
			listed = append(listed, ni.name)
		}
		r.Evidence = ev.public()
		r.Notes = append(r.Notes, fmt.Sprintf("built-in tag %s %s covers the %d names seen: %s", m.tag.Name, m.tag.Version, len(covered), list(listed)))
		var never, noLoc []string
		for i, e := range m.entries {
			switch {
			case !e.ok:
				noLoc = append(noLoc, e.fqdn)
			case !seen[i]:
				never = append(never, e.fqdn+" ("+e.proto+")")
			}
		}
		if len(never) > 0 {
			r.Notes = append(r.Notes, "tag entries never seen (the tag allows them too): "+strings.Join(never, ", "))
		}
		if len(noLoc) > 0 {
			r.Notes = append(r.Notes, "tag entries skipped for want of policy.location: "+strings.Join(noLoc, ", "))
		}
		out = append(out, r)
	}
	return out, untaken(names, taken)
}

// collapse proposes "*.suffix" for the names under one registrable domain
// (publicsuffix.EffectiveTLDPlusOne) when at least threshold distinct names
// below it were seen (DNS-only names count: a name is a name); suffix is the longest common parent of those names,
// never a public suffix. It returns the wildcard rules and the names left.
func collapse(names []*nameInfo, threshold int, sources []string) ([]ProposedRule, []*nameInfo) {
	byDomain := map[string][]*nameInfo{}
	var domains []string
	for _, ni := range names {
		d, err := publicsuffix.EffectiveTLDPlusOne(ni.name)
		if err != nil || d == ni.name {
			continue
		}
		if byDomain[d] == nil {
			domains = append(domains, d)
		}
		byDomain[d] = append(byDomain[d], ni)
	}
	taken := map[*nameInfo]bool{}
	var out []ProposedRule
	for _, d := range domains {
		sib := byDomain[d]
		if len(sib) < threshold {
			continue
		}
		base := commonParent(sib)
		for _, ni := range sib {
			if ni.name == base {
				base = d
				break
			}
		}
		if len(base) < len(d) {
			base = d
		}
		pattern := "*." + base
		if _, err := dnsname.ParsePattern(pattern); err != nil {
			continue
		}
		protos := map[string]bool{}
		var ev evidence
		var listed []string
		dnsOnly := 0
		r := ProposedRule{}
		for _, ni := range sib {
			taken[ni] = true
			if ni.dnsOnly {
				dnsOnly++
			}
			for p := range ni.protos {
				protos[p] = true
			}
			ev.merge(&ni.ev)
			r.checks = append(r.checks, ni.checks...)
			listed = append(listed, ni.name)
		}
		r.Rule = policy.Rule{Name: ruleName("wildcard." + base), Protocols: sortedProtos(protos), SourceAddresses: sources, TargetFqdns: []string{pattern}}
		r.Evidence = ev.public()
		r.Notes = []string{fmt.Sprintf("collapsed: %d names under %s (threshold %d): %s", len(sib), d, threshold, list(listed))}
		if dnsOnly > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%d of them seen in DNS only (no gateway record): protocol assumed https:443", dnsOnly))
		}
		out = append(out, r)
	}
	return out, untaken(names, taken)
}

// commonParent returns the longest label suffix every name shares.
func commonParent(names []*nameInfo) string {
	common := strings.Split(names[0].name, ".")
	for _, ni := range names[1:] {
		labels := strings.Split(ni.name, ".")
		n := 0
		for n < len(common) && n < len(labels) && common[len(common)-1-n] == labels[len(labels)-1-n] {
			n++
		}
		common = common[len(common)-n:]
	}
	return strings.Join(common, ".")
}

// list joins up to maxListed names, and no more than about 300
// characters of them, saying how many were left out.
func list(names []string) string {
	n, size := 0, 0
	for n < len(names) && n < maxListed && (n == 0 || size+len(names[n]) <= 300) {
		size += len(names[n]) + 2
		n++
	}
	if n == len(names) {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(", … (%d more)", len(names)-n)
}

// ruleName makes a valid rule name of s: letters, digits, '_', '.', '-',
// starting with a letter or digit, at most 80 characters (a longer one
// keeps its first 71 and gets a hash of the whole).
func ruleName(s string) string {
	b := []byte(s)
	for i, c := range b {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && c != '_' && c != '.' && c != '-' {
			b[i] = '-'
		}
	}
	out := string(b)
	if out == "" || !(out[0] >= 'a' && out[0] <= 'z' || out[0] >= 'A' && out[0] <= 'Z' || out[0] >= '0' && out[0] <= '9') {
		out = "r" + out
	}
	if len(out) > 80 {
		h := fnv.New32a()
		h.Write([]byte(s))
		out = fmt.Sprintf("%.71s-%08x", out, h.Sum32())
	}
	return out
}

// unique returns name, or name-2, name-3, … when taken; it records the
// result in taken.
func unique(name string, taken map[string]bool) string {
	out := name
	for i := 2; taken[out]; i++ {
		suffix := "-" + strconv.Itoa(i)
		out = name
		if len(out)+len(suffix) > 80 {
			out = out[:80-len(suffix)]
		}
		out += suffix
	}
	taken[out] = true
	return out
}

// freeGroup returns a group name and priority existing does not use: the
// name "learned" (or learned-2, …) and the first multiple of 100 after the
// highest priority in use (so existing groups keep their order before it),
// else any free priority.
func freeGroup(existing policy.Config) (string, int) {
	names := map[string]bool{}
	prios := map[int]bool{}
	highest := 0
	for _, g := range existing.RuleCollectionGroups {
		names[g.Name] = true
		prios[g.Priority] = true
		highest = max(highest, g.Priority)
	}
	name := unique("learned", names)
	prio := max(policy.MinPriority, (highest/100+1)*100)
	for prios[prio] || prio > policy.MaxPriority {
		if prio > policy.MaxPriority {
			prio = policy.MinPriority
			for prios[prio] {
				prio++
			}
			break
		}
		prio++
	}
	return name, prio
}

// untaken returns the names not in taken, in their order.
func untaken(names []*nameInfo, taken map[*nameInfo]bool) []*nameInfo {
	var rest []*nameInfo
	for _, ni := range names {
		if !taken[ni] {
			rest = append(rest, ni)
		}
	}
	return rest
}
