package policy

import (
	"cmp"
	"encoding/binary"
	"math"
	"net/netip"
	"slices"
	"strings"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// The indexes Compile builds so that Decide, AllowsName and DNAT cost about
// the same with 10 rules or 100,000 names (docs/policy.md, "How decisions
// scale").
//
// Every rule of a phase (dnat, network, application) has its place in
// processing order: its index in Policy.dnat, .network or .app. An index
// maps a key of the question (an address, a name, a port) to postings:
// the rules that may match when the question has that key, in processing
// order. A lookup gathers the postings of every key of the question and
// answers with the lowest rule among them that fully matches, checked by
// the same per-rule conditions the linear evaluator (decide.go) applies.
// The linear evaluator stays: DecideExplain and AllowsNameExplain use it to
// list every rule tried, and the tests compare the two on random policies.
//
// Completeness: each rule is filed under every key of one dimension it
// constrains (its destination addresses and names, its single ports, its
// source addresses, or its target names), chosen at compile time as the
// dimension whose keys the fewest other rules share; a rule that
// constrains none of them is on the phase's any list, which every lookup
// scans. A rule that matches a question matches it in the chosen
// dimension, so the question's keys find it.

// posting is one entry of an index: a rule (its place in processing order)
// and aux: for an application rule filed by name, the index of the target
// that has the key; auxDst for a network rule filed by destination (the
// key found already proves its destination condition); auxFull otherwise
// (check every condition).
type posting struct {
	rule int32
	aux  int32
}

const (
	auxFull int32 = -1
	auxDst  int32 = -2
)

// span locates one key's postings in postingMap.all.
type span struct{ off, n uint32 }

// postingMap is an immutable map from a key to its postings, stored in one
// array so the garbage collector has one object to scan, not one per key.
type postingMap[K comparable] struct {
	m   map[K]span
	all []posting
}

func (p *postingMap[K]) get(k K) []posting {
	s, ok := p.m[k]
	if !ok {
		return nil
	}
	return p.all[s.off : s.off+s.n : s.off+s.n]
}

// postingBuilder collects postings per key; rules must be added in
// processing order so that each key's list is sorted.
type postingBuilder[K comparable] map[K][]posting

func (b postingBuilder[K]) add(k K, p posting) {
	l := b[k]
	if n := len(l); n > 0 && l[n-1] == p {
		return // the same rule and target under the same key twice
	}
	b[k] = append(l, p)
}

func (b postingBuilder[K]) build() postingMap[K] {
	total := 0
	for _, l := range b {
		total += len(l)
	}
	out := postingMap[K]{m: make(map[K]span, len(b)), all: make([]posting, 0, total)}
	for k, l := range b {
		out.m[k] = span{uint32(len(out.all)), uint32(len(l))}
		out.all = append(out.all, l...)
	}
	return out
}

// prefixTable holds postings keyed by address prefix: one map per prefix
// length present, keyed by the masked address. A lookup probes each length
// once (at most 33 for IPv4, 129 for IPv6; in practice a handful).
type prefixTable struct {
	v4 []v4Level
	v6 []v6Level
}

type v4Level struct {
	mask uint32
	post postingMap[uint32]
}

type v6Level struct {
	hi, lo uint64 // mask
	post   postingMap[[2]uint64]
}

func v4Mask(bits int) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

func v6Mask(bits int) (hi, lo uint64) {
	switch {
	case bits == 0:
		return 0, 0
	case bits <= 64:
		return ^uint64(0) << (64 - bits), 0
	}
	return ^uint64(0), ^uint64(0) << (128 - bits)
}

func v4Key(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func v6Key(a netip.Addr) [2]uint64 {
	b := a.As16()
	return [2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

type prefixTableBuilder struct {
	v4 map[int]postingBuilder[uint32]
	v6 map[int]postingBuilder[[2]uint64]
}

func (b *prefixTableBuilder) add(p netip.Prefix, post posting) {
	bits, a := p.Bits(), p.Addr()
	if a.Is4() {
		if b.v4 == nil {
			b.v4 = map[int]postingBuilder[uint32]{}
		}
		if b.v4[bits] == nil {
			b.v4[bits] = postingBuilder[uint32]{}
		}
		b.v4[bits].add(v4Key(a)&v4Mask(bits), post)
		return
	}
	if b.v6 == nil {
		b.v6 = map[int]postingBuilder[[2]uint64]{}
	}
	if b.v6[bits] == nil {
		b.v6[bits] = postingBuilder[[2]uint64]{}
	}
	k := v6Key(a)
	hi, lo := v6Mask(bits)
	b.v6[bits].add([2]uint64{k[0] & hi, k[1] & lo}, post)
}

func (b *prefixTableBuilder) build() prefixTable {
	var t prefixTable
	for _, bits := range slices.Sorted(mapKeys(b.v4)) {
		t.v4 = append(t.v4, v4Level{mask: v4Mask(bits), post: b.v4[bits].build()})
	}
	for _, bits := range slices.Sorted(mapKeys(b.v6)) {
		hi, lo := v6Mask(bits)
		t.v6 = append(t.v6, v6Level{hi: hi, lo: lo, post: b.v6[bits].build()})
	}
	return t
}

func mapKeys[V any](m map[int]V) func(func(int) bool) {
	return func(yield func(int) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// scan passes the postings of every prefix of the table that contains a
// to s. An invalid or zoned address is in no prefix (netip.Prefix.Contains).
func (t *prefixTable) scan(a netip.Addr, s *search) {
	switch {
	case !a.IsValid() || a.Zone() != "":
	case a.Is4():
		k := v4Key(a)
		for i := range t.v4 {
			l := &t.v4[i]
			s.scan(l.post.get(k & l.mask))
		}
	default:
		k := v6Key(a)
		for i := range t.v6 {
			l := &t.v6[i]
			s.scan(l.post.get([2]uint64{k[0] & l.hi, k[1] & l.lo}))
		}
	}
}

// phaseIndex indexes the network or the application rules.
type phaseIndex struct {
	src prefixTable // sourceAddresses
	// network: destinationAddresses and destinationFqdns (auxDst).
	dst   prefixTable
	names postingMap[string] // network: destinationFqdns; application: exact targets
	sufx  postingMap[string] // application: "*.suffix" targets, by suffix
	// anyName: application "*" targets.
	anyName []posting
	ports   postingMap[uint16] // network: single destination ports
	any     []posting          // rules in no other index: scanned always
}

// index is the whole of a Policy's indexes.
type index struct {
	dnat    postingMap[netip.AddrPort] // DNAT rules by listen address
	net     phaseIndex
	netName postingMap[string] // network rules by destinationFqdn, for AllowsName
	app     phaseIndex
}

// Limits of the dimension choice (see chooseNetwork, chooseApplication).
const (
	// smallList: a rule with more destinationFqdns or targets than this is
	// always filed by them, so no lookup checks its names one by one.
	smallList = 8
	// maxPortKeys: a rule is filed by port only if its ports expand to at
	// most this many single ports.
	maxPortKeys = 64
)

func buildIndex(p *Policy) *index {
	x := &index{}
	dnat := postingBuilder[netip.AddrPort]{}
	for i, r := range p.dnat {
		r.fastSets()
		dnat.add(r.listen, posting{int32(i), auxFull})
	}
	x.dnat = dnat.build()
	x.net, x.netName = buildNetwork(p.network)
	x.app = buildApplication(p.app)
	return x
}

// dimension choice: each candidate dimension of a rule gets a cost, the
// largest number of rules sharing one of its keys (then the number of its
// keys); the cheapest wins, ties going to the earlier dimension.
type dimCost struct{ share, keys int }

func (c dimCost) less(d dimCost) bool {
	return c.share < d.share || c.share == d.share && c.keys < d.keys
}

var noDim = dimCost{math.MaxInt, math.MaxInt}

type keyCounts struct {
	prefixes map[netip.Prefix]int
	names    map[string]int
	ports    map[uint16]int
}

func newKeyCounts() keyCounts {
	return keyCounts{map[netip.Prefix]int{}, map[string]int{}, map[uint16]int{}}
}

func prefixCost(counts map[netip.Prefix]int, ps []netip.Prefix) dimCost {
	c := dimCost{keys: len(ps)}
	for _, p := range ps {
		c.share = max(c.share, counts[p])
	}
	return c
}

// singlePorts expands a network rule's ports into single ports, or reports
// false when they are too many or the rule also takes ICMP (which matches
// whatever the port).
func (r *rule) singlePorts() ([]uint16, bool) {
	if r.protos.has(ProtoICMP) {
		return nil, false
	}
	n := 0
	for _, pr := range r.ports {
		n += int(pr.hi) - int(pr.lo) + 1
		if n > maxPortKeys {
			return nil, false
		}
	}
	out := make([]uint16, 0, n)
	for _, pr := range r.ports {
		for p := int(pr.lo); p <= int(pr.hi); p++ {
			out = append(out, uint16(p))
		}
	}
	return out, true
}

const (
	dimDst = iota
	dimPort
	dimSrc
	dimAny
)

func buildNetwork(rules []*rule) (phaseIndex, postingMap[string]) {
	// Count how many rules share each key, per dimension.
	src, dst := newKeyCounts(), newKeyCounts()
	ports := map[uint16]int{}
	for _, r := range rules {
		r.fastSets()
		for _, p := range r.src.prefixes {
			src.prefixes[p]++
		}
		for _, p := range r.dst.prefixes {
			dst.prefixes[p]++
		}
		for _, n := range r.dstNames {
			dst.names[n.String()]++
		}
		if ps, ok := r.singlePorts(); ok {
			for _, p := range ps {
				ports[p]++
			}
		}
	}
	var srcB, dstB prefixTableBuilder
	names, portB, byName := postingBuilder[string]{}, postingBuilder[uint16]{}, postingBuilder[string]{}
	var anyL []posting
	for i, r := range rules {
		for _, n := range r.dstNames {
			byName.add(n.String(), posting{int32(i), auxFull})
		}
		costs := [dimAny]dimCost{noDim, noDim, noDim}
		if !r.dst.any {
			c := prefixCost(dst.prefixes, r.dst.prefixes)
			for _, n := range r.dstNames {
				c.share = max(c.share, dst.names[n.String()])
			}
			c.keys += len(r.dstNames)
			costs[dimDst] = c
		}
		ps, portsOK := r.singlePorts()
		forceDst := !r.dst.any && len(r.dstNames) > smallList
		if portsOK && !forceDst {
			c := dimCost{keys: len(ps)}
			for _, p := range ps {
				c.share = max(c.share, ports[p])
			}
			costs[dimPort] = c
		}
		if !r.src.any && !forceDst {
			costs[dimSrc] = prefixCost(src.prefixes, r.src.prefixes)
		}
		dim := dimAny
		for d := range costs {
			if costs[d] != noDim && (dim == dimAny || costs[d].less(costs[dim])) {
				dim = d
			}
		}
		full := posting{int32(i), auxFull}
		switch dim {
		case dimDst:
			viaDst := posting{int32(i), auxDst}
			for _, p := range r.dst.prefixes {
				dstB.add(p, viaDst)
			}
			for _, n := range r.dstNames {
				names.add(n.String(), viaDst)
			}
		case dimPort:
			for _, p := range ps {
				portB.add(p, full)
			}
		case dimSrc:
			for _, p := range r.src.prefixes {
				srcB.add(p, full)
			}
		default:
			anyL = append(anyL, full)
		}
	}
	return phaseIndex{src: srcB.build(), dst: dstB.build(), names: names.build(), ports: portB.build(), any: anyL}, byName.build()
}

// targetKey classifies an application target for the indexes: exact name,
// "*.suffix" (the key is the suffix) or "*".
func targetKey(p dnsname.Pattern) (key string, kind byte) {
	if n, ok := p.Exact(); ok {
		return n.String(), 'e'
	}
	s := p.String()
	if s == "*" {
		return "", '*'
	}
	return strings.TrimPrefix(s, "*."), 's'
}

func buildApplication(rules []*rule) phaseIndex {
	src := newKeyCounts()
	exact, sufx := map[string]int{}, map[string]int{}
	star := 0
	for _, r := range rules {
		r.fastSets()
		for _, p := range r.src.prefixes {
			src.prefixes[p]++
		}
		for _, t := range r.targets {
			switch k, kind := targetKey(t.pattern); kind {
			case 'e':
				exact[k]++
			case 's':
				sufx[k]++
			default:
				star++
			}
		}
	}
	var srcB prefixTableBuilder
	exactB, sufxB := postingBuilder[string]{}, postingBuilder[string]{}
	var anyName []posting
	for i, r := range rules {
		if len(r.targets) == 0 {
			continue // every tag entry skipped: it matches no name
		}
		byName := dimCost{keys: len(r.targets)}
		for _, t := range r.targets {
			switch k, kind := targetKey(t.pattern); kind {
			case 'e':
				byName.share = max(byName.share, exact[k])
			case 's':
				byName.share = max(byName.share, sufx[k])
			default:
				byName.share = max(byName.share, star)
			}
		}
		if !r.src.any && len(r.targets) <= smallList && prefixCost(src.prefixes, r.src.prefixes).less(byName) {
			for _, p := range r.src.prefixes {
				srcB.add(p, posting{int32(i), auxFull})
			}
			continue
		}
		for j, t := range r.targets {
			post := posting{int32(i), int32(j)}
			switch k, kind := targetKey(t.pattern); kind {
			case 'e':
				exactB.add(k, post)
			case 's':
				sufxB.add(k, post)
			default:
				anyName = append(anyName, post)
			}
		}
	}
	// Every application rule constrains its names: none is on the any list.
	return phaseIndex{src: srcB.build(), names: exactB.build(), sufx: sufxB.build(), anyName: anyName}
}

// search finds the first rule of a phase that matches a question among the
// postings it is given (scan), keeping the lowest match so far (best).
type search struct {
	rules []*rule
	f     *Flow
	mode  uint8
	want  appProto
	best  int32
}

const (
	modeDNAT = iota
	modeNetwork
	modeNetworkName
	modeApplication
	modeApplicationName
)

func newSearch(rules []*rule, f *Flow, mode uint8) search {
	return search{rules: rules, f: f, mode: mode, best: math.MaxInt32}
}

// scan checks l's postings in order, up to the best match so far.
func (s *search) scan(l []posting) {
	for _, c := range l {
		if c.rule >= s.best {
			return
		}
		if s.match(s.rules[c.rule], c.aux) {
			s.best = c.rule
			return
		}
	}
}

// match reports whether r matches the question: the conditions of the
// linear evaluator's match functions, minus those the posting proves.
func (s *search) match(r *rule, aux int32) bool {
	f := s.f
	switch s.mode {
	case modeDNAT:
		return r.protos.has(f.Proto) && f.Dst == r.listen && r.srcHas(f.Src)
	case modeNetwork:
		return r.protos.has(f.Proto) && r.srcHas(f.Src) &&
			(f.Proto == ProtoICMP || r.portOK(f.Dst.Port())) &&
			(aux == auxDst || r.dstHas(f.Dst.Addr()) || r.resolvedName(f.DstNames) >= 0)
	case modeNetworkName:
		return r.srcHas(f.Src) // the posting's key is one of its destinationFqdns
	case modeApplication:
		if !r.srcHas(f.Src) {
			return false
		}
		if aux < 0 {
			return r.target(f.Name, &s.want) >= 0
		}
		t := &r.targets[aux]
		return t.pattern.Match(f.Name) && containsProto(t.protos, s.want)
	case modeApplicationName:
		if !r.srcHas(f.Src) {
			return false
		}
		if aux < 0 {
			return r.target(f.Name, nil) >= 0
		}
		return r.targets[aux].pattern.Match(f.Name)
	}
	return false
}

// found returns the rule found, or nil.
func (s *search) found() *rule {
	if s.best == math.MaxInt32 {
		return nil
	}
	return s.rules[s.best]
}

// names scans the postings of an application name: the exact name, each
// "*.suffix" that covers it, and "*".
func (x *phaseIndex) scanName(n dnsname.Name, s *search) {
	if n.IsZero() {
		return
	}
	name := n.String()
	s.scan(x.names.get(name))
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			s.scan(x.sufx.get(name[i+1:]))
		}
	}
	s.scan(x.anyName)
}

func (p *Policy) dnatIndexed(f *Flow) *rule {
	s := newSearch(p.dnat, f, modeDNAT)
	s.scan(p.idx.dnat.get(f.Dst))
	return s.found()
}

func (p *Policy) networkIndexed(f *Flow) *rule {
	x := &p.idx.net
	s := newSearch(p.network, f, modeNetwork)
	s.scan(x.any)
	x.dst.scan(f.Dst.Addr(), &s)
	for _, n := range f.DstNames {
		s.scan(x.names.get(n.String()))
	}
	if f.Proto != ProtoICMP {
		s.scan(x.ports.get(f.Dst.Port()))
	}
	x.src.scan(f.Src, &s)
	return s.found()
}

func (p *Policy) applicationIndexed(f *Flow, mode uint8) *rule {
	x := &p.idx.app
	s := newSearch(p.app, f, mode)
	s.want = appProto{f.App, f.Dst.Port()}
	x.scanName(f.Name, &s)
	x.src.scan(f.Src, &s)
	return s.found()
}

func (p *Policy) networkNameIndexed(f *Flow) *rule {
	s := newSearch(p.network, f, modeNetworkName)
	s.scan(p.idx.netName.get(f.Name.String()))
	return s.found()
}

// decideIndexed is Decide by the indexes: the same phases and answers as
// decide, without trying every rule.
func (p *Policy) decideIndexed(f Flow) Decision {
	f.Src = f.Src.Unmap()
	f.Dst = netip.AddrPortFrom(f.Dst.Addr().Unmap(), f.Dst.Port())
	if r := p.dnatIndexed(&f); r != nil {
		return r.decision()
	}
	if r := p.networkIndexed(&f); r != nil {
		return r.decision()
	}
	switch {
	case f.Proto != ProtoTCP || f.App == AppNone:
	case f.Name.IsZero() && f.App == AppHTTPS:
		return Deny(ReasonSNIMissing)
	case f.Name.IsZero():
		return Deny(ReasonHostMissing)
	default:
		if r := p.applicationIndexed(&f, modeApplication); r != nil {
			return r.decision()
		}
	}
	return Deny(ReasonNoMatch)
}

func (p *Policy) allowsNameIndexed(src netip.Addr, name dnsname.Name) Decision {
	if name.IsZero() {
		return Deny(ReasonNoMatch)
	}
	f := Flow{Src: src.Unmap(), Name: name}
	if r := p.networkNameIndexed(&f); r != nil {
		return r.decision()
	}
	if r := p.applicationIndexed(&f, modeApplicationName); r != nil {
		return r.decision()
	}
	return Deny(ReasonNoMatch)
}

// addrRanges is a large address set as sorted, disjoint ranges of one
// family each, for rules with many prefixes: contains is a binary search.
type addrRanges struct {
	lo, hi []netip.Addr
}

func newAddrRanges(ps []netip.Prefix) *addrRanges {
	type rng struct{ lo, hi netip.Addr }
	rs := make([]rng, 0, len(ps))
	for _, p := range ps {
		rs = append(rs, rng{p.Masked().Addr(), lastAddr(p)})
	}
	slices.SortFunc(rs, func(a, b rng) int { return cmp.Or(a.lo.Compare(b.lo), a.hi.Compare(b.hi)) })
	out := &addrRanges{}
	for _, r := range rs {
		if n := len(out.lo); n > 0 && out.lo[n-1].BitLen() == r.lo.BitLen() && r.lo.Compare(out.hi[n-1]) <= 0 {
			if r.hi.Compare(out.hi[n-1]) > 0 {
				out.hi[n-1] = r.hi
			}
			continue
		}
		out.lo, out.hi = append(out.lo, r.lo), append(out.hi, r.hi)
	}
	return out
}

// lastAddr returns the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	if a.Is4() {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v4Key(a)|^v4Mask(p.Bits()))
		return netip.AddrFrom4(b)
	}
	k := v6Key(a)
	hi, lo := v6Mask(p.Bits())
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k[0]|^hi)
	binary.BigEndian.PutUint64(b[8:], k[1]|^lo)
	return netip.AddrFrom16(b)
}

// contains reports whether a is in one of the ranges; an invalid or zoned
// address is in none, as with netip.Prefix.Contains.
func (s *addrRanges) contains(a netip.Addr) bool {
	if !a.IsValid() || a.Zone() != "" {
		return false
	}
	// The last range starting at or before a.
	i, found := slices.BinarySearchFunc(s.lo, a, func(lo, a netip.Addr) int { return lo.Compare(a) })
	if found {
		return true
	}
	if i == 0 {
		return false
	}
	return s.lo[i-1].BitLen() == a.BitLen() && a.Compare(s.hi[i-1]) <= 0
}

// fastSets prepares the rule's large address sets for srcHas and dstHas.
func (r *rule) fastSets() {
	if !r.src.any && len(r.src.prefixes) > smallList {
		r.srcRanges = newAddrRanges(r.src.prefixes)
	}
	if !r.dst.any && len(r.dst.prefixes) > smallList {
		r.dstRanges = newAddrRanges(r.dst.prefixes)
	}
}

// srcHas is r.src.contains, by binary search for large sets.
func (r *rule) srcHas(a netip.Addr) bool {
	if r.srcRanges != nil {
		return r.srcRanges.contains(a)
	}
	return r.src.contains(a)
}

// dstHas is r.dst.contains, by binary search for large sets.
func (r *rule) dstHas(a netip.Addr) bool {
	if r.dstRanges != nil {
		return r.dstRanges.contains(a)
	}
	return r.dst.contains(a)
}
