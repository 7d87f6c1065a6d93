package policy

import (
	"fmt"
	"net/netip"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// Validate reports every problem in c, each with its path relative to the
// policy section (for example
// "ruleCollectionGroups[0].ruleCollections[1].rules[2].destinationPorts[0]")
// and a message saying what is wrong and what is accepted. It does what
// Compile does short of building the result, so a Config Validate accepts
// compiles.
func (c Config) Validate(report func(path, msg string)) {
	b := builder{cfg: c, report: report, warn: func(string, string) {}}
	b.build()
}

// builder walks a Config once, reporting problems and warnings and
// collecting the compiled rules in file order.
type builder struct {
	cfg    Config
	report func(path, msg string)
	warn   func(path, msg string)
	tags   []FQDNTag
	rules  []*rule
}

// rule is a compiled rule.
type rule struct {
	typ                     CollectionType
	action                  Action
	group, collection, name string
	groupPrio, collPrio     int

	protos    protoSet   // network, dnat
	appProtos []appProto // application
	src, dst  addrSet    // dst: network
	dstNames  []dnsname.Name
	ports     []portRange // network
	targets   []target    // application
	listed    bool        // application: has targetFqdns
	tagged    bool        // application: has fqdnTags
	listen    netip.AddrPort
	trans     netip.AddrPort
	// srcRanges and dstRanges hold src and dst as sorted ranges when they
	// have many prefixes (index.go, fastSets); nil otherwise.
	srcRanges, dstRanges *addrRanges
}

// target is one name pattern of an application rule with the protocols it
// is allowed on.
type target struct {
	pattern dnsname.Pattern
	protos  []appProto
	tag     string // the FQDN tag it came from; "" for targetFqdns
}

func (b *builder) build() {
	tags, err := loadTags()
	if err != nil {
		b.report("", err.Error())
	}
	b.tags = tags
	if c := b.cfg.Location; c != "" && !validLocation(c) {
		b.report("location", fmt.Sprintf("%q: want an Azure region name such as eastus (lowercase letters, digits and '-')", c))
	}
	groupNames := map[string]string{}
	groupPrios := map[int]string{}
	for i, g := range b.cfg.RuleCollectionGroups {
		gp := fmt.Sprintf("ruleCollectionGroups[%d]", i)
		b.name(gp, g.Name, groupNames)
		b.priority(gp, g.Priority, groupPrios)
		collNames := map[string]string{}
		collPrios := map[int]string{}
		for j, c := range g.RuleCollections {
			cp := fmt.Sprintf("%s.ruleCollections[%d]", gp, j)
			b.name(cp, c.Name, collNames)
			b.priority(cp, c.Priority, collPrios)
			typeOK := b.collectionType(cp, c)
			ruleNames := map[string]string{}
			for k, r := range c.Rules {
				rp := fmt.Sprintf("%s.rules[%d]", cp, k)
				b.name(rp, r.Name, ruleNames)
				if !typeOK {
					continue
				}
				cr := &rule{typ: c.Type, action: c.Action, group: g.Name, collection: c.Name, name: r.Name, groupPrio: g.Priority, collPrio: c.Priority}
				b.fieldsFor(rp, c.Type, r)
				switch c.Type {
				case TypeNetwork:
					b.network(rp, r, cr)
				case TypeApplication:
					b.application(rp, r, cr)
				case TypeDNAT:
					b.dnat(rp, r, cr)
				}
				b.rules = append(b.rules, cr)
			}
		}
	}
}

// name checks a group, collection or rule name and its uniqueness in seen
// (name → path of its first use).
func (b *builder) name(path, name string, seen map[string]string) {
	switch {
	case name == "":
		b.report(path+".name", "is required")
		return
	case !validName(name):
		b.report(path+".name", fmt.Sprintf("%q: want 1-80 letters, digits, '_', '.' or '-', starting with a letter or digit", name))
	}
	if first, dup := seen[name]; dup {
		b.report(path+".name", fmt.Sprintf("duplicate name %q (also %s)", name, first))
		return
	}
	seen[name] = path
}

func (b *builder) priority(path string, prio int, seen map[int]string) {
	switch {
	case prio == 0:
		b.report(path+".priority", fmt.Sprintf("is required: %d (first) to %d (last)", MinPriority, MaxPriority))
		return
	case prio < MinPriority || prio > MaxPriority:
		b.report(path+".priority", fmt.Sprintf("%d is out of range %d..%d", prio, MinPriority, MaxPriority))
		return
	}
	if first, dup := seen[prio]; dup {
		b.report(path+".priority", fmt.Sprintf("duplicate priority %d (also %s)", prio, first))
		return
	}
	seen[prio] = path
}

// collectionType checks type and action; it reports whether the type is
// known, so the rules can be checked against it.
func (b *builder) collectionType(path string, c RuleCollection) bool {
	ok := true
	switch c.Type {
	case TypeNetwork, TypeApplication, TypeDNAT:
	case "":
		b.report(path+".type", "is required: network, application or dnat")
		ok = false
	default:
		b.report(path+".type", fmt.Sprintf("%q: want network, application or dnat", c.Type))
		ok = false
	}
	switch c.Action {
	case ActionAllow:
	case ActionDeny:
		if c.Type == TypeDNAT {
			b.report(path+".action", `"deny": a dnat collection forwards what it matches; want allow`)
		}
	case "":
		b.report(path+".action", "is required: allow or deny")
	default:
		b.report(path+".action", fmt.Sprintf("%q: want allow or deny", c.Action))
	}
	return ok
}

// fieldsFor reports fields that do not belong to a rule of type t.
func (b *builder) fieldsFor(path string, t CollectionType, r Rule) {
	check := func(key string, set bool, belongs string, ok bool) {
		if set && !ok {
			article := "a"
			if t == TypeApplication {
				article = "an"
			}
			b.report(path+"."+key, fmt.Sprintf("not allowed in %s %s rule; it belongs to %s rules", article, t, belongs))
		}
	}
	check("destinationAddresses", len(r.DestinationAddresses) > 0, "network and dnat", t != TypeApplication)
	check("destinationFqdns", len(r.DestinationFqdns) > 0, "network", t == TypeNetwork)
	check("destinationPorts", len(r.DestinationPorts) > 0, "network and dnat", t != TypeApplication)
	check("targetFqdns", len(r.TargetFqdns) > 0, "application", t == TypeApplication)
	check("fqdnTags", len(r.FqdnTags) > 0, "application", t == TypeApplication)
	check("translatedAddress", r.TranslatedAddress != "", "dnat", t == TypeDNAT)
	check("translatedPort", r.TranslatedPort != "", "dnat", t == TypeDNAT)
}

// validName checks a group, collection or rule name: 1–80 characters,
// letters, digits, '_', '.', '-', starting with a letter or digit.
func validName(s string) bool {
	if s == "" || len(s) > 80 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || (c != '_' && c != '.' && c != '-')) {
			return false
		}
	}
	return true
}

// validLocation checks a region name, which lands inside a DNS label.
func validLocation(s string) bool {
	if s == "" || len(s) > dnsname.MaxLabelLength || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
